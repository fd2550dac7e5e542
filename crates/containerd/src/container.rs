//! The containerd verbs on one container and its task: create (replacing a stale one), start,
//! kill, inspect and delete. No state is kept here; the executor decides what to call.

use std::path::Path;
use std::time::{Duration, Instant};

use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetContainerRequest, GetRequest, KillRequest, StartRequest,
};
use containerd_client::types::v1::{Process, Status};
use prost_types::Any;
use tonic::Code;

use crate::connection::Connection;
use crate::error::Error;

/// The type URL containerd (and Moby) give a runtime spec.
const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// How long a stale task may take to die after SIGKILL.
const STALE_KILL_DEADLINE: Duration = Duration::from_secs(10);

/// SIGKILL's number.
const SIGKILL: u32 = 9;

/// Where a task stands, as far as the executor cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// Running, paused or pausing: a live process.
    Alive,
    /// Created but never started: no plugin code has run.
    Created,
    /// Exited, with its status.
    Stopped(u32),
    /// containerd cannot tell (the shim is gone).
    Unknown,
}

/// A task as containerd reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskInfo {
    pub(crate) pid: u32,
    pub(crate) state: TaskState,
}

impl TaskInfo {
    fn from_process(p: &Process) -> Self {
        let state = match Status::try_from(p.status) {
            Ok(Status::Running | Status::Paused | Status::Pausing) => TaskState::Alive,
            Ok(Status::Created) => TaskState::Created,
            Ok(Status::Stopped) => TaskState::Stopped(p.exit_status),
            Ok(Status::Unknown) | Err(_) => TaskState::Unknown,
        };
        TaskInfo { pid: p.pid, state }
    }
}

fn ignore_not_found<T>(result: Result<T, tonic::Status>) -> Result<Option<T>, tonic::Status> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(s),
    }
}

impl Connection {
    /// Creates container `id` from the JSON runtime spec (whose `root.path` is the rootfs),
    /// with no image and no snapshot. A container of the same ID is replaced: its task is
    /// killed and deleted, then the container, then creation is tried once more.
    pub(crate) async fn create_container(
        &self,
        id: &str,
        spec: &[u8],
        runtime: &str,
    ) -> Result<(), Error> {
        match self.create_container_once(id, spec, runtime).await {
            Err(status) if status.code() == Code::AlreadyExists => {
                tracing::info!(container = id, "replacing a stale container of the same id");
                self.remove(id).await?;
                self.create_container_once(id, spec, runtime)
                    .await
                    .map_err(|s| Error::rpc("create container", id, s))
            }
            other => other.map_err(|s| Error::rpc("create container", id, s)),
        }
    }

    async fn create_container_once(
        &self,
        id: &str,
        spec: &[u8],
        runtime: &str,
    ) -> Result<(), tonic::Status> {
        let container = Container {
            id: id.to_owned(),
            runtime: Some(Runtime { name: runtime.to_owned(), options: None }),
            spec: Some(Any { type_url: SPEC_TYPE_URL.to_owned(), value: spec.to_vec() }),
            ..Default::default()
        };
        let request = self.request(CreateContainerRequest { container: Some(container) });
        self.containers().create(request).await.map(|_| ())
    }

    /// Whether container `id` exists.
    pub(crate) async fn container_exists(&self, id: &str) -> Result<bool, Error> {
        let request = self.request(GetContainerRequest { id: id.to_owned() });
        ignore_not_found(self.containers().get(request).await)
            .map(|c| c.is_some())
            .map_err(|s| Error::rpc("get container", id, s))
    }

    /// Deletes container `id`; one that is already gone is fine.
    pub(crate) async fn delete_container(&self, id: &str) -> Result<(), Error> {
        let request = self.request(DeleteContainerRequest { id: id.to_owned() });
        ignore_not_found(self.containers().delete(request).await)
            .map(|_| ())
            .map_err(|s| Error::rpc("delete container", id, s))
    }

    /// Creates the task of container `id` with stdout and stderr going to the FIFOs given
    /// (no stdin, no terminal); returns its init PID.
    ///
    /// A task of the same id that containerd still holds although it shows none (see
    /// [`force_delete_task`](Self::force_delete_task): a delete cut short after its container
    /// was already gone) makes containerd answer "already exists": that task is deleted, now
    /// that the container exists again, and creation is tried once more.
    pub(crate) async fn create_task(
        &self,
        id: &str,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<u32, Error> {
        match self.create_task_once(id, stdout, stderr).await {
            Err(status) if status.code() == Code::AlreadyExists => {
                tracing::info!(container = id, "deleting a stale task of the same id");
                self.force_delete_task(id).await?;
                self.create_task_once(id, stdout, stderr)
                    .await
                    .map_err(|s| Error::rpc("create task", id, s))
            }
            other => other.map_err(|s| Error::rpc("create task", id, s)),
        }
    }

    async fn create_task_once(
        &self,
        id: &str,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<u32, tonic::Status> {
        let request = self.request(CreateTaskRequest {
            container_id: id.to_owned(),
            stdout: stdout.to_string_lossy().into_owned(),
            stderr: stderr.to_string_lossy().into_owned(),
            ..Default::default()
        });
        self.tasks().create(request).await.map(|r| r.into_inner().pid)
    }

    /// Starts the task of container `id`.
    pub(crate) async fn start_task(&self, id: &str) -> Result<(), Error> {
        let request =
            self.request(StartRequest { container_id: id.to_owned(), exec_id: String::new() });
        self.tasks().start(request).await.map(|_| ()).map_err(|s| Error::rpc("start task", id, s))
    }

    /// Sends `signal` to the init process of `id` (to every process of the task if `all`).
    pub(crate) async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), Error> {
        let request = self.request(KillRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
            signal,
            all,
        });
        self.tasks().kill(request).await.map(|_| ()).map_err(|s| Error::rpc("kill task", id, s))
    }

    /// The task of `id`, or `None` when it has none.
    pub(crate) async fn task(&self, id: &str) -> Result<Option<TaskInfo>, Error> {
        let request =
            self.request(GetRequest { container_id: id.to_owned(), exec_id: String::new() });
        let found = ignore_not_found(self.tasks().get(request).await)
            .map_err(|s| Error::rpc("get task", id, s))?;
        Ok(found.and_then(|r| r.into_inner().process).map(|p| TaskInfo::from_process(&p)))
    }

    /// Deletes the (stopped) task of `id`; one that is already gone is fine.
    pub(crate) async fn delete_task(&self, id: &str) -> Result<(), Error> {
        let request = self.request(DeleteTaskRequest { container_id: id.to_owned() });
        ignore_not_found(self.tasks().delete(request).await)
            .map(|_| ())
            .map_err(|s| Error::rpc("delete task", id, s))
    }

    /// Kills (SIGKILL, every process) and deletes the task of `id` if it has one, waiting a
    /// bounded time for it to stop.
    ///
    /// A task that containerd does not show is still deleted: a delete cut short (its caller
    /// killed while containerd waited for the shim) can leave containerd holding the shim of
    /// a task the shim itself has already deleted. containerd then answers "not found" for
    /// that task (and `ctr tasks ls` hides it) but refuses a new task of the same id ("already
    /// exists") for as long as that record lives; a delete clears it and shuts the shim down.
    /// containerd needs the container for that delete.
    pub(crate) async fn force_delete_task(&self, id: &str) -> Result<(), Error> {
        let Some(info) = self.task(id).await? else {
            return self.delete_task(id).await;
        };
        if !matches!(info.state, TaskState::Stopped(_)) {
            match self.kill(id, SIGKILL, true).await {
                Ok(()) => {}
                // Already gone, or already stopped between the two calls.
                Err(Error::Rpc { source, .. })
                    if matches!(source.code(), Code::NotFound | Code::FailedPrecondition) => {}
                Err(e) => return Err(e),
            }
            self.wait_stopped(id).await?;
        }
        self.delete_task(id).await
    }

    /// Polls until the task of `id` is stopped or gone (bounded).
    async fn wait_stopped(&self, id: &str) -> Result<(), Error> {
        let end = Instant::now() + STALE_KILL_DEADLINE;
        let mut pause = Duration::from_millis(5);
        loop {
            match self.task(id).await? {
                None => return Ok(()),
                Some(TaskInfo { state: TaskState::Stopped(_) | TaskState::Created, .. }) => {
                    return Ok(())
                }
                Some(_) if Instant::now() >= end => {
                    return Err(Error::StaleTask { id: id.to_owned() })
                }
                Some(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
            }
        }
    }

    /// Removes container `id` for good: its task (killed if needed), then the container.
    pub(crate) async fn remove(&self, id: &str) -> Result<(), Error> {
        self.force_delete_task(id).await?;
        self.delete_container(id).await
    }
}
