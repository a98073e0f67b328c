//! `--mode` other than this build's: the other build's `lab` does the work
//! (its binaries sit in the sibling target directory), and `--mode both`
//! runs the two stacks side by side (sync on 80xx, async on 81xx, a database
//! each) and the race page once both launchers answer.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use common::{MODE, Mode};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// Both stacks share one PostgreSQL: 20 services at this pool size fit its
/// default `max_connections` (100); `lab up` refuses to start when they would not.
const SHARED_POOL: &str = "4";

pub async fn other(mode: &str) -> anyhow::Result<()> {
    let args = without_mode(std::env::args().skip(1));
    match mode {
        "both" if args.first().map(String::as_str) == Some("up") => up(&args).await,
        "both" => {
            for mode in [Mode::Sync, Mode::Async] {
                let lab = lab_of(mode)?;
                let status = std::process::Command::new(&lab).args(&args).status()?;
                if !status.success() {
                    bail!("{} {} exited with {status}", lab.display(), args.join(" "));
                }
            }
            Ok(())
        }
        _ => {
            let mode = if mode == "async" {
                Mode::Async
            } else {
                Mode::Sync
            };
            let lab = lab_of(mode)?;
            Err(std::process::Command::new(&lab).args(&args).exec())
                .with_context(|| format!("cannot run {}", lab.display()))
        }
    }
}

/// The command line without its `--mode` (each build runs its own mode).
fn without_mode(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut kept = Vec::new();
    let mut skip_next = false;
    for arg in args {
        if skip_next {
            skip_next = false;
        } else if arg == "--mode" {
            skip_next = true;
        } else if !arg.starts_with("--mode=") {
            kept.push(arg);
        }
    }
    kept
}

/// The binaries directory of a mode's build: `target/<profile>` (sync) or
/// `target/async/<profile>`, beside this build's.
fn dir_of(mode: Mode) -> anyhow::Result<PathBuf> {
    let here = crate::binaries_dir()?;
    if mode == MODE {
        return Ok(here);
    }
    let profile = here.file_name().context("no profile directory")?.to_owned();
    let parent = here.parent().context("no target directory")?;
    Ok(match mode {
        Mode::Async => parent.join("async").join(profile),
        Mode::Sync => parent
            .parent()
            .context("no target directory")?
            .join(profile),
    })
}

fn lab_of(mode: Mode) -> anyhow::Result<PathBuf> {
    built(&dir_of(mode)?.join("lab"), mode)
}

fn built(path: &Path, mode: Mode) -> anyhow::Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "no {mode} build at {} (scripts/lab.sh builds it, or `cargo build --release --bins{}`)",
            path.display(),
            if mode == Mode::Async {
                " --workspace --features lab-tests/async --target-dir target/async"
            } else {
                ""
            }
        );
    }
    Ok(path.to_owned())
}

async fn up(args: &[String]) -> anyhow::Result<()> {
    let labs = [lab_of(Mode::Sync)?, lab_of(Mode::Async)?];
    let showdown = built(&dir_of(Mode::Sync)?.join("showdown"), Mode::Sync)?;
    let pool = std::env::var("DB_MAX_CONNECTIONS").unwrap_or_else(|_| {
        println!("lab: both stacks share PostgreSQL: DB_MAX_CONNECTIONS={SHARED_POOL} per service (set it to override)");
        SHARED_POOL.into()
    });
    // A database each: the two modes' services own the same schema names.
    let database = std::env::var("DATABASE_URL").ok();
    let mut children = Vec::new();
    for (mode, lab) in [Mode::Sync, Mode::Async].into_iter().zip(labs) {
        let mut command = Command::new(lab);
        command
            .args(args)
            .env("DB_MAX_CONNECTIONS", &pool)
            .kill_on_drop(true);
        if let Some(url) = &database {
            command.env("DATABASE_URL", format!("{url}_{mode}"));
        }
        children.push((
            if mode == Mode::Sync {
                "the sync stack"
            } else {
                "the async stack"
            },
            command.spawn()?,
        ));
    }
    let result = run(&mut children, showdown).await;
    for (_, child) in &children {
        if let Some(pid) = child.id() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGINT);
        }
    }
    for (name, child) in &mut children {
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            eprintln!("lab: {name} did not stop within 30 s; killing it");
            let _ = child.kill().await;
        }
    }
    result
}

/// Waits until both launchers answer, starts the race page, and runs until
/// Ctrl-C or until one of them exits.
async fn run(children: &mut Vec<(&'static str, Child)>, showdown: PathBuf) -> anyhow::Result<()> {
    let shutdown = common::app::shutdown_signal();
    tokio::pin!(shutdown);
    for mode in [Mode::Sync, Mode::Async] {
        let url = format!(
            "http://127.0.0.1:{}/services",
            common::services::launcher_port(mode)
        );
        loop {
            if common::app::check_health(&url).await.is_ok() {
                break;
            }
            exited(children)?;
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }
    children.push((
        "showdown",
        Command::new(showdown).kill_on_drop(true).spawn()?,
    ));
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(500)) => exited(children)?,
        }
    }
}

fn exited(children: &mut [(&'static str, Child)]) -> anyhow::Result<()> {
    for (name, child) in children.iter_mut() {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited ({status}); stopping the rest");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_taken_off_the_command_line_wherever_it_is() {
        fn args(v: &[&str]) -> impl Iterator<Item = String> {
            v.iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
                .into_iter()
        }
        assert_eq!(
            without_mode(args(&["up", "--mode", "both", "--without", "email"])),
            ["up", "--without", "email"]
        );
        assert_eq!(without_mode(args(&["--mode=async", "status"])), ["status"]);
    }
}
