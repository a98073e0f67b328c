//! What a report's figures were measured on: the machine, the versions, the
//! disk's fsync latency and the commit. Two reports are comparable when
//! these match.

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub postgresql: String,
    pub rabbitmq: String,
    /// fdatasync of 8 KiB writes in the report's directory: median and p99, µs.
    pub fsync_p50_us: f64,
    pub fsync_p99_us: f64,
    pub commit: String,
    /// Uncommitted changes when the report was made.
    pub dirty: bool,
    /// `release` or `debug`: how the stacks' binaries were built.
    pub build: String,
}

fn first_line(output: std::io::Result<std::process::Output>) -> Option<String> {
    let output = output.ok()?;
    output.status.success().then_some(())?;
    let text = String::from_utf8_lossy(&output.stdout);
    Some(text.lines().next()?.trim().to_owned())
}

fn proc_value(file: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
}

/// Median and 99th percentile of `rounds` write + fdatasync, in µs.
pub fn fsync_latency(dir: &Path, rounds: usize) -> std::io::Result<(f64, f64)> {
    let path = dir.join(".fsync-probe");
    let mut file = std::fs::File::create(&path)?;
    let block = [0x5a_u8; 8192];
    let mut took = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        took.push(start.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    took.sort_by(f64::total_cmp);
    let at = |q: f64| took[((took.len() - 1) as f64 * q).round() as usize];
    Ok((at(0.5), at(0.99)))
}

/// Reads the machine; `postgres` and `rabbitmq_api` name the servers.
pub async fn read(dir: &Path, postgres: &str, rabbitmq_api: &str, build: &str) -> Machine {
    let (fsync_p50_us, fsync_p99_us) = fsync_latency(dir, 200).unwrap_or((f64::NAN, f64::NAN));
    let postgresql = match PgConnection::connect(postgres).await {
        Ok(mut db) => sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut db)
            .await
            .unwrap_or_else(|e| format!("unknown ({e})")),
        Err(e) => format!("unknown ({e})"),
    };
    let rabbitmq = rabbitmq_version(rabbitmq_api)
        .await
        .unwrap_or_else(|| "unknown (management API not reachable)".into());
    let memory_kb: f64 = proc_value("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    Machine {
        cpu: proc_value("/proc/cpuinfo", "model name").unwrap_or_else(|| "unknown".into()),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        memory_gib: (memory_kb / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into()),
        rustc: first_line(Command::new("rustc").arg("--version").output())
            .unwrap_or_else(|| "unknown".into()),
        postgresql,
        rabbitmq,
        fsync_p50_us,
        fsync_p99_us,
        commit: first_line(Command::new("git").args(["rev-parse", "HEAD"]).output())
            .unwrap_or_else(|| "unknown".into()),
        dirty: Command::new("git")
            .args(["status", "--porcelain", "--untracked-files=no"])
            .output()
            .is_ok_and(|o| !o.stdout.is_empty()),
        build: build.to_owned(),
    }
}

async fn rabbitmq_version(api: &str) -> Option<String> {
    let overview: serde_json::Value = reqwest::Client::new()
        .get(format!("{api}/api/overview"))
        .basic_auth("guest", Some("guest"))
        .timeout(std::time::Duration::from_secs(3))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    Some(overview["rabbitmq_version"].as_str()?.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_latency_is_measured_on_the_directory_given() {
        let dir = std::env::temp_dir();
        let (p50, p99) = fsync_latency(&dir, 20).expect("a writable temp dir");
        assert!(p50 > 0.0 && p99 >= p50, "{p50} {p99}");
        assert!(
            !dir.join(".fsync-probe").exists(),
            "the probe file is removed"
        );
    }
}
