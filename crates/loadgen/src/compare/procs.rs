//! CPU time and memory of the processes a run involves, from /proc: each
//! service of the stack, PostgreSQL, RabbitMQ and the driver itself.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// CPU seconds used so far and memory, per group of processes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub groups: BTreeMap<String, Usage>,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU seconds, its own and its reaped children's.
    pub cpu_seconds: f64,
    /// Resident memory now and at its peak (kB), summed over the group.
    pub rss_kb: u64,
    pub peak_kb: u64,
}

/// One group's share of a run: the CPU it used between two snapshots and its
/// memory at the second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Used {
    pub name: String,
    pub cpu_seconds: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
}

/// The group a process belongs to: `user` for `user-service`, `postgresql`,
/// `rabbitmq`, `lab-load`; `None` for the rest.
fn group(argv0: &str, comm: &str) -> Option<String> {
    let name = argv0.rsplit('/').next().unwrap_or_default();
    if let Some(service) = name.strip_suffix("-service") {
        return Some(service.to_owned());
    }
    match comm {
        "postgres" => Some("postgresql".into()),
        "beam.smp" | "erl_child_setup" | "epmd" => Some("rabbitmq".into()),
        "lab-load" => Some("lab-load".into()),
        _ => None,
    }
}

/// The fields of `/proc/<pid>/stat` after the command name: state is [0],
/// utime [11], stime [12], cutime [13], cstime [14].
fn cpu_ticks(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let total = tick(11)? + tick(12)? + tick(13)? + tick(14)?;
    Some((comm, total))
}

fn status_kb(status: &str, key: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Clock ticks per second, as /proc counts CPU time.
fn ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// Reads every process of the groups above.
pub fn snapshot() -> Snapshot {
    let hz = ticks_per_second();
    let mut groups: BTreeMap<String, Usage> = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Snapshot { groups };
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        if let Some((name, usage)) = read(&path, hz) {
            let total = groups.entry(name).or_default();
            total.cpu_seconds += usage.cpu_seconds;
            total.rss_kb += usage.rss_kb;
            total.peak_kb += usage.peak_kb;
        }
    }
    Snapshot { groups }
}

fn read(path: &Path, hz: f64) -> Option<(String, Usage)> {
    let stat = std::fs::read_to_string(path.join("stat")).ok()?;
    let (comm, ticks) = cpu_ticks(&stat)?;
    let cmdline = std::fs::read(path.join("cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let name = group(&String::from_utf8_lossy(argv0), &comm)?;
    let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
    Some((
        name,
        Usage {
            cpu_seconds: ticks as f64 / hz,
            rss_kb: status_kb(&status, "VmRSS:"),
            peak_kb: status_kb(&status, "VmHWM:"),
        },
    ))
}

/// What each group used from `before` to `after`. A service exists only in
/// `after` when its stack started in between; PostgreSQL's backends that
/// exited in between are counted in the postmaster's children's time.
pub fn used(before: &Snapshot, after: &Snapshot) -> Vec<Used> {
    after
        .groups
        .iter()
        .map(|(name, now)| {
            let then = before.groups.get(name).copied().unwrap_or_default();
            Used {
                name: name.clone(),
                cpu_seconds: (now.cpu_seconds - then.cpu_seconds).max(0.0),
                rss_mb: now.rss_kb as f64 / 1024.0,
                peak_rss_mb: now.peak_kb as f64 / 1024.0,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_its_command_and_all_cpu_ticks() {
        // A command name with a space and a parenthesis, as /proc allows.
        let stat = "4242 (web (x) 1) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 50 7 3 20 0 4 0 100 1000 200";
        assert_eq!(
            cpu_ticks(stat),
            Some(("web (x) 1".into(), 150 + 50 + 7 + 3))
        );
    }

    #[test]
    fn processes_are_grouped_by_what_they_are() {
        assert_eq!(
            group("/work/target/release/analytics-service", "analytics-servi"),
            Some("analytics".into())
        );
        assert_eq!(
            group("postgres: 15/main: postgres lab_x", "postgres"),
            Some("postgresql".into())
        );
        assert_eq!(
            group("/usr/lib/erlang/erts-13/bin/beam.smp", "beam.smp"),
            Some("rabbitmq".into())
        );
        assert_eq!(group("/bin/bash", "bash"), None);
    }

    #[test]
    fn what_a_run_used_is_the_difference_and_the_memory_at_its_end() {
        let usage = |cpu, rss| Usage {
            cpu_seconds: cpu,
            rss_kb: rss,
            peak_kb: rss * 2,
        };
        let before = Snapshot {
            groups: [("postgresql".to_owned(), usage(10.0, 1024))].into(),
        };
        let after = Snapshot {
            groups: [
                ("postgresql".to_owned(), usage(12.5, 2048)),
                ("user".to_owned(), usage(0.75, 10240)),
            ]
            .into(),
        };
        let used = used(&before, &after);
        assert_eq!(used[0].name, "postgresql");
        assert!((used[0].cpu_seconds - 2.5).abs() < 1e-9);
        assert!((used[0].rss_mb - 2.0).abs() < 1e-9);
        assert!((used[1].cpu_seconds - 0.75).abs() < 1e-9);
        assert!((used[1].peak_rss_mb - 20.0).abs() < 1e-9);
    }
}
