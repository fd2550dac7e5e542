//! The one way this crate takes a `std::sync` lock, and its one policy for poisoning.
//!
//! **Policy: a poisoned lock is taken anyway.** A lock is poisoned when a thread panicked
//! while holding it. Every critical section in this crate either only reads, or computes the
//! new value before it takes the lock (or while holding it, without touching the data) and
//! then changes the data in one step: an assignment, one push or one removal. A panic can
//! therefore only happen before that step, and the data behind a poisoned lock is whole. Refusing
//! the lock instead would turn one panic into a manager whose every later call fails, or,
//! worse, one that skips a change in memory it already made on disk.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, poisoned or not.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, poisoned or not.
pub(crate) fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, poisoned or not.
pub(crate) fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
