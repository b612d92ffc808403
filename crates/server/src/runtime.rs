//! The multi-threaded tokio runtime `hookwarden serve` (and the bench) runs on.
//!
//! With SQLite every write goes through one connection, and sqlx runs each connection on a
//! thread of its own: that thread is the one place all ingest, claims and outcomes pass
//! through, one at a time. On a machine whose cores are all busy with HTTP work, the kernel
//! shares them evenly among the runtime's workers and that thread, so the writer got about
//! two thirds of a core while every other task waited on it: in the bench, a fifth of the
//! machine sat idle while deliveries queued behind the writer. The runtime's own threads
//! therefore run a few steps below normal priority (nice), and the writer's thread, started
//! from the thread that opens the store (`main`, before the runtime's tasks run), keeps
//! normal priority and takes the core it needs first. Raising a thread's nice value needs no
//! privilege; lowering it back does, so this only ever lowers. Should the writer's connection
//! ever be opened again (sqlx reopens one that failed), its new thread starts from a worker and
//! runs at the workers' priority: slower under full load, nothing worse. Reader connections,
//! opened as needed, run there too.
//!
//! Linux only: elsewhere a nice value is per process, not per thread, and nothing changes.

use std::io;

/// The nice value by which the runtime's threads yield to the SQLite writer's thread (0–19;
/// `worker_niceness` in the configuration). Any value from 2 up gave the writer the core it
/// needed in the bench; 5 leaves room either way.
pub const DEFAULT_WORKER_NICENESS: u8 = 5;

/// A multi-threaded runtime with every I/O and timer driver, with `threads` worker threads
/// (`None`: one per core this process may use; `runtime_threads` in the configuration), whose
/// worker and blocking threads run `niceness` steps below the priority of the thread that
/// builds it (0: the same).
pub fn build(niceness: u8, threads: Option<usize>) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = threads {
        builder.worker_threads(threads.max(1));
    }
    if niceness > 0 {
        let base = own_niceness();
        builder.on_thread_start(move || lower_own_priority(base, niceness));
    }
    builder.build()
}

/// The calling thread's nice value (0 where there is none to read).
pub fn own_niceness() -> i32 {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpriority reads the calling thread's nice value (`who` 0 is this thread on
        // Linux); -1 is also a valid value, so errno tells an error apart.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            if *libc::__errno_location() != 0 {
                return 0;
            }
            nice
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

fn lower_own_priority(base: i32, niceness: u8) {
    #[cfg(target_os = "linux")]
    {
        let target = (base + i32::from(niceness)).min(19);
        // SAFETY: setpriority on `who` 0 changes only the calling thread on Linux. A failure
        // (a sandbox that forbids it) leaves the thread at normal priority, which is correct,
        // only slower.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, target) };
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (base, niceness);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn worker_threads_run_below_the_building_threads_priority() {
        let base = own_niceness();
        let rt = build(5, None).unwrap();
        let on_worker = rt.block_on(async { tokio::spawn(async { own_niceness() }).await });
        let on_blocking = rt.block_on(rt.spawn_blocking(own_niceness));
        // `block_on` runs on the calling thread, which keeps its priority.
        let on_caller = rt.block_on(async { own_niceness() });
        assert_eq!(on_worker.unwrap(), (base + 5).min(19));
        assert_eq!(on_blocking.unwrap(), (base + 5).min(19));
        assert_eq!(on_caller, base);
        assert_eq!(own_niceness(), base);
    }

    #[test]
    fn niceness_zero_changes_nothing() {
        let base = own_niceness();
        let rt = build(0, None).unwrap();
        let on_worker = rt.block_on(async { tokio::spawn(async { own_niceness() }).await });
        assert_eq!(on_worker.unwrap(), base);
    }
}

#[cfg(test)]
mod thread_tests {
    use super::*;

    #[test]
    fn the_runtime_has_as_many_worker_threads_as_asked_and_one_per_core_by_default() {
        assert_eq!(build(0, Some(1)).unwrap().metrics().num_workers(), 1);
        assert_eq!(build(0, Some(3)).unwrap().metrics().num_workers(), 3);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(build(0, None).unwrap().metrics().num_workers(), cores);
    }
}
