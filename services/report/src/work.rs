//! The report's CPU work: a chain of SHA-256 rounds, calibrated so that the
//! default amount takes `REPORT_SECONDS` on one idle core of this machine.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Runs `iterations` rounds, each hashing the previous digest, starting from
/// the report type. Deterministic: the same type and count give the same hash.
pub fn hash_chain(report_type: &str, iterations: u64) -> String {
    let mut digest = Sha256::digest(report_type.as_bytes());
    for _ in 1..iterations {
        digest = Sha256::digest(digest);
    }
    hex::encode(digest)
}

static ROUNDS_PER_SECOND: OnceLock<f64> = OnceLock::new();

/// SHA-256 rounds one idle core does per second, measured once per process.
/// The best of five short runs, so that a neighbour busy at startup (the other
/// services starting) does not make reports longer than `REPORT_SECONDS`.
/// Blocks for about 250 ms the first time; call it on a blocking thread.
pub fn rounds_per_second() -> f64 {
    *ROUNDS_PER_SECOND.get_or_init(|| {
        let rate = (0..5)
            .map(|_| measure(Duration::from_millis(50)))
            .fold(0.0, f64::max);
        tracing::info!(rounds_per_second = rate as u64, "report work calibrated");
        rate
    })
}

fn measure(budget: Duration) -> f64 {
    let start = Instant::now();
    let mut rounds = 0u64;
    let mut digest = Sha256::digest(b"calibration");
    while start.elapsed() < budget {
        for _ in 0..10_000 {
            digest = Sha256::digest(digest);
        }
        rounds += 10_000;
    }
    std::hint::black_box(digest);
    rounds as f64 / start.elapsed().as_secs_f64()
}

/// The number of rounds of one report: `REPORT_ITERATIONS` if set, else calibrated.
pub fn iterations(fixed: Option<u64>, seconds: f64) -> u64 {
    fixed.unwrap_or_else(|| ((rounds_per_second() * seconds) as u64).max(1))
}

/// Puts the calling thread behind everything else that wants a core, as far
/// as the process is allowed to:
///
/// - Linux's `SCHED_IDLE` policy: another thread of the same scheduling group
///   that wakes up takes the core from it at once (a lower nice value would
///   only shorten its turns). That group is the process's session (its
///   autogroup) or its container, so alone it only gives way to the service's
///   own threads: PostgreSQL, RabbitMQ, the other services and the load driver
///   are other groups, and a thread of theirs that wakes up may wait for the
///   hashing's time slice.
/// - So, where the cgroup v1 `cpu` controller is mounted and writable (a
///   native run as root), the thread also moves to the cgroup
///   [`IDLE_CGROUP`] with `cpu.idle` = 1: the same rule between that group
///   and every other one on the machine.
///
/// Whatever is not allowed (some sandboxes, containers) is logged once and the
/// thread stays as it was in that respect.
pub fn behind_requests() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
        set_thread_priority_and_policy, thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        tracing::warn!(error = ?e, "report worker keeps its normal CPU priority");
    }
    // "0" in a v1 `tasks` file is the writing thread itself.
    if let Some(group) = idle_cgroup()
        && let Err(e) = std::fs::write(group.join("tasks"), "0")
    {
        tracing::warn!(error = %e, group = %group.display(), "report worker stays in its cgroup");
    }
}

/// The cgroup of the threads nobody waits on (shared by every report service
/// of the machine; left in place, empty, when they are gone).
const IDLE_CGROUP: &str = "/sys/fs/cgroup/cpu/lab-background";

/// Makes [`IDLE_CGROUP`] once per process; `None` where it cannot be made.
fn idle_cgroup() -> Option<&'static std::path::Path> {
    static GROUP: OnceLock<Option<&'static std::path::Path>> = OnceLock::new();
    *GROUP.get_or_init(|| {
        let group = std::path::Path::new(IDLE_CGROUP);
        let made = match std::fs::create_dir(group) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => std::fs::write(group.join("cpu.idle"), "1"),
        };
        match made {
            Ok(()) => {
                tracing::info!(group = IDLE_CGROUP, "report workers run in an idle cgroup");
                Some(group)
            }
            Err(e) => {
                tracing::info!(error = %e, "no idle cgroup: report workers are idle only within the service's scheduling group");
                None
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calling thread's scheduling policy (field 41 of its stat line).
    fn policy() -> String {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("Linux");
        let after_name = &stat[stat.rfind(')').expect("comm") + 2..];
        after_name
            .split(' ')
            .nth(38)
            .expect("policy field")
            .to_owned()
    }

    /// What `read` finds on a new thread after [`behind_requests`].
    fn on_a_background_thread<T: Send + 'static>(read: fn() -> T) -> T {
        std::thread::spawn(move || {
            behind_requests();
            read()
        })
        .join()
        .expect("thread")
    }

    #[test]
    fn a_background_thread_runs_behind_the_others_and_only_it() {
        let before = policy();
        let worker = on_a_background_thread(policy);
        assert_eq!(worker, "5", "SCHED_IDLE");
        assert_eq!(policy(), before);
    }

    /// The calling thread's cgroup in the v1 `cpu` hierarchy, if mounted.
    fn cpu_cgroup() -> Option<String> {
        let groups = std::fs::read_to_string("/proc/thread-self/cgroup").expect("Linux");
        groups.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers
                .split(',')
                .any(|c| c == "cpu")
                .then(|| path.to_owned())
        })
    }

    /// Where the machine lets a process make cgroups (CI and a native run as
    /// root here), the worker leaves the process's cgroup for an idle one;
    /// elsewhere this says so and checks only that nothing else moved.
    #[test]
    fn where_allowed_a_background_thread_runs_in_an_idle_cgroup() {
        let before = cpu_cgroup();
        let worker = on_a_background_thread(cpu_cgroup);
        assert_eq!(cpu_cgroup(), before, "only the worker moves");
        if idle_cgroup().is_none() {
            eprintln!("no writable cgroup v1 cpu controller here: SCHED_IDLE only");
            assert_eq!(worker, before);
            return;
        }
        assert_eq!(worker.as_deref(), Some("/lab-background"));
        let idle = std::fs::read_to_string(format!("{IDLE_CGROUP}/cpu.idle")).expect("cpu.idle");
        assert_eq!(idle.trim(), "1");
    }

    #[test]
    fn the_chain_is_deterministic_and_depends_on_both_inputs() {
        assert_eq!(hash_chain("monthly", 1000), hash_chain("monthly", 1000));
        assert_ne!(hash_chain("monthly", 1000), hash_chain("monthly", 1001));
        assert_ne!(hash_chain("monthly", 1000), hash_chain("weekly", 1000));
        // One round is the plain SHA-256 of the type.
        assert_eq!(
            hash_chain("abc", 1),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
