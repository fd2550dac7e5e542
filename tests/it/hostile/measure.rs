//! Measurements for the hostile cases: descriptors and resident memory of a process, the
//! server-side connections of a unix socket, and the printed table line.

use std::path::Path;
use std::time::Duration;

/// Open descriptors of process `pid` (`/proc/<pid>/fd`).
pub fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Open descriptors of this process.
pub fn own_fds() -> usize {
    fds(std::process::id())
}

/// Resident memory of process `pid` in KiB (`VmRSS`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resident memory of this process in KiB.
pub fn own_rss_kib() -> u64 {
    rss_kib(std::process::id())
}

/// Server-side connections of the unix socket at `path`: the accepted sockets carry the
/// listener's path in `/proc/net/unix`, the clients' ends do not, and the listener itself
/// has the accepting flag. Exact even while other tests of this process open descriptors.
pub fn server_conns(path: &Path) -> usize {
    let want = path.to_string_lossy();
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // Num RefCount Protocol Flags Type St Inode Path
            cols.len() >= 8 && cols[7] == want && cols[3] != "00010000"
        })
        .count()
}

/// One line of the hostile-case table.
pub struct Row<'a> {
    pub case: &'a str,
    pub deadline: Duration,
    pub measured: Duration,
    pub fds: Option<(usize, usize)>,
    pub rss_kib: Option<(u64, u64)>,
}

impl Row<'_> {
    /// Prints the line and checks the measured time against the deadline.
    pub fn report(&self) {
        let fds = self.fds.map_or("-".to_owned(), |(a, b)| format!("{a} -> {b}"));
        let rss = self.rss_kib.map_or("-".to_owned(), |(a, b)| format!("{a} KiB -> {b} KiB"));
        eprintln!(
            "hostile: {} | deadline {:.1?} | measured {:.2?} | fds {fds} | rss {rss}",
            self.case, self.deadline, self.measured
        );
        assert!(
            self.measured <= self.deadline,
            "{}: took {:.2?}, past its deadline {:.1?}",
            self.case,
            self.measured,
            self.deadline
        );
    }
}
