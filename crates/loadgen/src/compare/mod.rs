//! `lab-load compare`: the lab's question answered in one command. Every
//! scenario runs in both modes with the same settings, closed loop and open
//! loop below and above the async consumers' capacity, for N repetitions,
//! each run on a fresh stack; the result is one directory with `data.json`
//! (every raw figure), `report.md`, `index.html` (self-contained) and SVG plots.

pub mod data;
pub mod machine;
pub mod plots;
pub mod procs;
pub mod readme;
pub mod render;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use common::Mode;
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::drive::{Load, MAX_IN_FLIGHT, Outcome, drive};
use crate::scenario::Scenario;
use crate::stack::{self, Infra, Stack};
use data::{Data, Dist, LoadKind, Records, RunData, Settings};

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Scenarios (1-6, names or all).
    #[arg(default_value = "all", value_parser = Scenario::parse)]
    pub scenarios: Vec<Vec<Scenario>>,
    /// The short profile: one repetition of 2 s loads, closed loop and open
    /// loop below capacity (a first look, and CI). Default: the full profile
    /// (3 repetitions of 10 s, closed loop, open loop below and above).
    #[arg(long)]
    pub quick: bool,
    /// Repetitions of every run (default: 3, quick: 1).
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Closed loop: concurrent clients.
    #[arg(long, default_value_t = 20)]
    pub clients: usize,
    /// Seconds of measured load per run (default: 10, quick: 2).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Where the report goes.
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// The sync build's binaries (`lab`, the services).
    #[arg(long, default_value = "target/release")]
    pub sync_bin: PathBuf,
    /// The async build's binaries.
    #[arg(long, default_value = "target/async/release")]
    pub async_bin: PathBuf,
    /// A setting for both stacks, as the services read it from the
    /// environment (repeatable): `--set EMAIL_DELAY_MS=50`. Unless set, the
    /// report's work is 0.5 s of CPU (REPORT_SECONDS=0.5, quick: 0.1; the
    /// services' default, 10 s, would keep a 2-core machine busy for minutes
    /// per run).
    #[arg(long = "set", value_parser = parse_setting)]
    pub set: Vec<(String, String)>,
    /// An earlier report's data.json: print and plot the differences, and
    /// flag those beyond the run-to-run spread.
    #[arg(long)]
    pub against: Option<PathBuf>,
    /// Any database URL of the PostgreSQL server the stacks use (each run
    /// gets a database of its own on it).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pub postgres: String,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp: String,
    /// Components restarted under load after the scenarios, each in both
    /// modes on a fresh stack (`lab-load fault`): `all`, `none`, or a list
    /// (`payment,broker`). Default: all in the full profile, payment in the
    /// quick one.
    /// (Repeatable; each occurrence is a list, hence the nesting clap needs.)
    #[arg(long, value_parser = parse_faults)]
    pub faults: Option<Vec<Vec<crate::fault::Fault>>>,
    /// RabbitMQ's management API (only its version is read).
    #[arg(long, default_value = "http://127.0.0.1:15672")]
    pub rabbitmq_api: String,
}

fn parse_faults(s: &str) -> Result<Vec<crate::fault::Fault>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    let mut faults = Vec::new();
    for part in s.split(',') {
        faults.extend(crate::fault::Fault::parse(part.trim())?);
    }
    Ok(faults)
}

fn parse_setting(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or("KEY=VALUE")?;
    if !common::config::VARS.contains(&key) {
        return Err(format!("{key} is not a setting the services read"));
    }
    if matches!(key, "DATABASE_URL" | "BROKER_PREFIX" | "AMQP_URL" | "PORT") {
        return Err(format!("{key} is set per run by compare itself"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The durations and loads of a profile.
struct Profile {
    name: &'static str,
    repetitions: usize,
    warmup: Duration,
    duration: Duration,
    drain_timeout: Duration,
    loads: Vec<LoadKind>,
}

impl Profile {
    fn of(args: &CompareArgs) -> Profile {
        let (name, repetitions, warmup, duration, drain, loads) = if args.quick {
            (
                "quick",
                1,
                1.0,
                2.0,
                8.0,
                vec![LoadKind::Closed, LoadKind::OpenBelow],
            )
        } else {
            (
                "full",
                3,
                2.0,
                10.0,
                30.0,
                vec![LoadKind::Closed, LoadKind::OpenBelow, LoadKind::OpenAbove],
            )
        };
        Profile {
            name,
            repetitions: args.repetitions.unwrap_or(repetitions).max(1),
            warmup: Duration::from_secs_f64(warmup),
            duration: Duration::from_secs_f64(args.duration.unwrap_or(duration)),
            drain_timeout: Duration::from_secs_f64(drain),
            loads,
        }
    }
}

/// The report scenario's CPU work per report, unless `--set` says otherwise:
/// the full profile's, and the quick one's, whose 2 s window would otherwise
/// end before any of 20 sync reports sharing two cores (5 s each) is done.
const REPORT_SECONDS: &str = "0.5";
const REPORT_SECONDS_QUICK: &str = "0.1";
const BELOW: f64 = 0.5;
const ABOVE: f64 = 1.5;

pub async fn run(args: CompareArgs) -> anyhow::Result<()> {
    let scenarios: Vec<Scenario> = {
        let mut chosen: Vec<Scenario> = args.scenarios.iter().flatten().copied().collect();
        chosen.sort_by_key(|s| s.number());
        chosen.dedup();
        chosen
    };
    let profile = Profile::of(&args);
    let mut env = args.set.clone();
    if !env.iter().any(|(k, _)| k.starts_with("REPORT_")) {
        let seconds = if args.quick {
            REPORT_SECONDS_QUICK
        } else {
            REPORT_SECONDS
        };
        env.push(("REPORT_SECONDS".into(), seconds.into()));
    }
    for (mode, bin) in [(Mode::Sync, &args.sync_bin), (Mode::Async, &args.async_bin)] {
        stack::ports_free(mode)?;
        if !bin.join("lab").is_file() {
            bail!(
                "no {mode} build in {} (scripts/compare.sh builds both; or pass --{mode}-bin)",
                bin.display()
            );
        }
    }
    let against = match &args.against {
        Some(path) => Some(read_data(path)?),
        None => None,
    };
    std::fs::create_dir_all(args.out.join("logs"))
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let build = if args.sync_bin.ends_with("release") && args.async_bin.ends_with("release") {
        "release"
    } else {
        "debug"
    };
    let machine = machine::read(&args.out, &args.postgres, &args.rabbitmq_api, build).await;
    let mut data = Data {
        format: data::FORMAT,
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        profile: profile.name.into(),
        machine,
        settings: Settings {
            repetitions: profile.repetitions,
            clients: args.clients,
            warmup_s: profile.warmup.as_secs_f64(),
            duration_s: profile.duration.as_secs_f64(),
            drain_timeout_s: profile.drain_timeout.as_secs_f64(),
            below_share: BELOW,
            above_share: ABOVE,
            max_in_flight: MAX_IN_FLIGHT,
            stack_env: env.iter().cloned().collect(),
            scenarios: scenarios.iter().map(|s| s.name().to_owned()).collect(),
            loads: profile.loads.clone(),
        },
        runs: Vec::new(),
        faults: Vec::new(),
    };
    let infra = Infra {
        postgres: args.postgres.clone(),
        amqp: args.amqp.clone(),
    };
    let total = profile.repetitions * scenarios.len() * profile.loads.len() * 2;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} runs, {elapsed} so far, about {eta} left: {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix("compare");
    let mut capacity: BTreeMap<usize, f64> = BTreeMap::new();
    let tag = format!("cmp{}", std::process::id());
    let mut n = 0;
    for repetition in 0..profile.repetitions {
        for &scenario in &scenarios {
            for &kind in &profile.loads {
                for mode in [Mode::Sync, Mode::Async] {
                    n += 1;
                    bar.set_message(format!(
                        "{} {} · {mode} · {} · repetition {}/{}",
                        scenario.number(),
                        scenario.name(),
                        kind.title(),
                        repetition + 1,
                        profile.repetitions
                    ));
                    let rate = match kind {
                        LoadKind::Closed => None,
                        LoadKind::OpenBelow => Some(share_of(&capacity, scenario, BELOW)),
                        LoadKind::OpenAbove => Some(share_of(&capacity, scenario, ABOVE)),
                    };
                    let bin = match mode {
                        Mode::Sync => &args.sync_bin,
                        Mode::Async => &args.async_bin,
                    };
                    let name = format!("{tag}_{n}");
                    let run = one_run(OneRun {
                        bin,
                        mode,
                        scenario,
                        kind,
                        rate,
                        repetition,
                        clients: args.clients,
                        profile: &profile,
                        env: &env,
                        infra: &infra,
                        name: &name,
                        log: &args.out.join("logs").join(format!(
                            "{repetition}-{}-{}-{mode}.log",
                            scenario.number(),
                            kind.slug()
                        )),
                    })
                    .await
                    .with_context(|| format!("{} {mode} {}", scenario.name(), kind.title()))?;
                    if repetition == 0 && kind == LoadKind::Closed && mode == Mode::Async {
                        capacity.insert(scenario.number(), run.capacity());
                    }
                    let line = format!(
                        "{:<12} {:<5} {:<26} p50 {:>9} answered {:>8.1}/s{}",
                        format!("{} {}", scenario.number(), scenario.name()),
                        mode.as_str(),
                        format!("{} (rep {})", kind.title(), repetition + 1),
                        format!("{:.1} ms", run.answered.p50_ms),
                        run.throughput,
                        match run.problems().first() {
                            Some(p) => format!("  ! {p}"),
                            None => String::new(),
                        }
                    );
                    if bar.is_hidden() {
                        eprintln!("{line}");
                    } else {
                        bar.println(line);
                    }
                    data.runs.push(run);
                    write_data(&args.out, &data)?;
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    // A fault hits a load both modes carry: the scenario's steady (below
    // capacity) rate, as its open loop below; 20 clients back to back would
    // leave the async stack a backlog its consumers take minutes to finish
    // (registrations' emails finish 20 a second), whatever the fault.
    let steady = |scenario: Scenario| {
        capacity
            .contains_key(&scenario.number())
            .then(|| share_of(&capacity, scenario, BELOW))
    };
    let faults = args.faults.clone().map(|f| f.concat()).unwrap_or_else(|| {
        if args.quick {
            vec![crate::fault::Fault::Service("payment")]
        } else {
            crate::fault::ALL.to_vec()
        }
    });
    for fault in faults {
        for (mode, bin) in [(Mode::Sync, &args.sync_bin), (Mode::Async, &args.async_bin)] {
            n += 1;
            let name = format!("{tag}_{n}");
            let log = args
                .out
                .join("logs")
                .join(format!("fault-{}-{mode}.log", fault.name()));
            // The drain is a cap: at a steady rate the work is final seconds
            // after the load. Back to back (the scenario not run), a broker
            // restart's ~50,000 orders took 61.8 s once on a 2-core VM.
            let (duration, at, down, drain) = if args.quick {
                (6.0, 1.5, 1.5, 60)
            } else {
                (12.0, 3.0, 3.0, 120)
            };
            let trial = crate::fault::Trial {
                bin,
                mode,
                name: &name,
                env: &env,
                infra: &infra,
                log: &log,
                clients: args.clients,
                rate: steady(fault.scenario()),
                duration: Duration::from_secs_f64(duration),
                drain_timeout: Duration::from_secs(drain),
                plan: crate::fault::Plan {
                    at: Duration::from_secs_f64(at),
                    down: Duration::from_secs_f64(down),
                },
            };
            let run = crate::fault::on_fresh_stack(&trial, fault).await?.summary();
            eprintln!("fault: {}", run.cells().join(" | "));
            data.faults.push(run);
            write_data(&args.out, &data)?;
        }
    }
    render::write(&args.out, &data, against.as_ref())?;
    println!("{}", render::summary_text(&data, against.as_ref()));
    println!("report: {}", args.out.join("index.html").display());
    Ok(())
}

/// An open loop's rate: `share` of the scenario's capacity as its first
/// async closed loop measured it (10/s when it was not run), to 0.1/s, at
/// least 1/s.
fn share_of(capacity: &BTreeMap<usize, f64>, scenario: Scenario, share: f64) -> f64 {
    let cap = capacity.get(&scenario.number()).copied().unwrap_or(10.0);
    ((cap * share * 10.0).round() / 10.0).max(1.0)
}

/// `lab-load render`: the report's files again from its data.json.
pub fn render_again(dir: &Path, against: Option<&Path>) -> anyhow::Result<()> {
    let data = read_data(&dir.join("data.json"))?;
    let against = against.map(read_data).transpose()?;
    render::write(dir, &data, against.as_ref())?;
    print!("{}", render::summary_text(&data, against.as_ref()));
    Ok(())
}

pub fn read_data(path: &Path) -> anyhow::Result<Data> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let data: Data = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a report's data.json", path.display()))?;
    if data.format != data::FORMAT {
        bail!(
            "{} has format {}, this lab-load reads {}",
            path.display(),
            data.format,
            data::FORMAT
        );
    }
    Ok(data)
}

fn write_data(out: &Path, data: &Data) -> anyhow::Result<()> {
    let path = out.join("data.json");
    let tmp = out.join("data.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(data)?)?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

struct OneRun<'a> {
    bin: &'a Path,
    mode: Mode,
    scenario: Scenario,
    kind: LoadKind,
    rate: Option<f64>,
    repetition: usize,
    clients: usize,
    profile: &'a Profile,
    env: &'a [(String, String)],
    infra: &'a Infra,
    name: &'a str,
    log: &'a Path,
}

async fn one_run(run: OneRun<'_>) -> anyhow::Result<RunData> {
    let stack = Stack::start(run.bin, run.mode, run.name, run.env, run.infra, run.log).await?;
    let load = Load {
        mode: run.mode,
        host: "127.0.0.1".into(),
        clients: run.clients,
        think: Duration::ZERO,
        rate: run.rate,
        max_in_flight: MAX_IN_FLIGHT,
        warmup: run.profile.warmup,
        duration: run.profile.duration,
        drain_timeout: run.profile.drain_timeout,
        hangup: None,
        database_url: stack.database_url.clone(),
        replicas: stack.replicas.clone(),
        progress: false,
        stock_every_order: true,
    };
    let measured = async {
        let client = load.client()?;
        let before = procs::snapshot();
        let stop = CancellationToken::new();
        let sampled = (run.mode == Mode::Async).then(|| {
            let broker = Arc::new(Broker::new(&run.infra.amqp, &stack.prefix));
            tokio::spawn(sample_queues(broker, stop.clone()))
        });
        let outcome = drive(&client, &load, run.scenario).await;
        stop.cancel();
        let queues = match sampled {
            Some(task) => task.await.unwrap_or_default(),
            None => BTreeMap::new(),
        };
        let after = procs::snapshot();
        anyhow::Ok((outcome?, queues, procs::used(&before, &after)))
    };
    // Ctrl-C stops the run's stack too, and leaves the report of the runs so far.
    let measured = tokio::select! {
        measured = measured => measured,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; data.json holds the runs before this one")),
    };
    stack.stop().await;
    let (outcome, queues, resources) = measured?;
    Ok(run_data(&run, &load, outcome, queues, resources))
}

/// Messages ready in each of the stack's queues, every quarter second.
type QueueSeries = BTreeMap<String, Vec<(f64, u64)>>;

async fn sample_queues(broker: Arc<Broker>, stop: CancellationToken) -> QueueSeries {
    let names: Vec<&str> = common::topology::QUEUES.iter().map(|q| q.name).collect();
    let begin = Instant::now();
    let mut samples = QueueSeries::new();
    let mut every = tokio::time::interval(crate::completion::SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                if let Some((depths, _)) = broker.depths(&names).await {
                    let t = begin.elapsed().as_secs_f64();
                    for depth in depths {
                        samples.entry(depth.name).or_default().push((t, u64::from(depth.ready)));
                    }
                }
            }
            () = stop.cancelled() => return samples,
        }
    }
}

/// The queues' total over time.
fn total(queues: &QueueSeries) -> Vec<(f64, u64)> {
    let Some(first) = queues.values().next() else {
        return Vec::new();
    };
    (0..first.len())
        .map(|i| {
            let t = first[i].0;
            let sum = queues
                .values()
                .filter_map(|s| s.get(i))
                .map(|(_, n)| n)
                .sum();
            (t, sum)
        })
        .collect()
}

fn run_data(
    run: &OneRun<'_>,
    load: &Load,
    outcome: Outcome,
    queues: QueueSeries,
    resources: Vec<procs::Used>,
) -> RunData {
    let load_end_s = (load.warmup + load.duration).as_secs_f64();
    let completion = outcome.completion.as_ref();
    let finished_count = completion.map_or(0, |c| c.latency.len());
    let verdict = outcome.verdict.as_ref().and_then(|v| v.as_ref().ok());
    let finish_rate = match completion {
        Some(c) => Some(match c.drained_after {
            Some(after) => finished_count as f64 / (load_end_s + after.as_secs_f64()),
            None => c.drain_rate,
        }),
        // Not followed one by one: the pace in the stack's records.
        None => verdict.and_then(|v| v.pace),
    };
    let warm_expected = outcome
        .warmup
        .statuses
        .get(&outcome.expected)
        .copied()
        .unwrap_or(0);
    let operations = match completion {
        Some(_) => finished_count,
        None => outcome.expected_answers() + warm_expected,
    };
    let records = outcome.verdict.as_ref().map(|v| match v {
        Ok(v) => Records {
            started: v.started,
            unfinished: v.unfinished,
            wrong: v.wrong.clone(),
            error: None,
        },
        Err(e) => Records {
            started: 0,
            unfinished: 0,
            wrong: Vec::new(),
            error: Some(e.clone()),
        },
    });
    RunData {
        scenario: run.scenario.name().into(),
        number: run.scenario.number(),
        mode: run.mode.as_str().into(),
        load: run.kind,
        repetition: run.repetition,
        clients: run.rate.is_none().then_some(run.clients),
        rate: run.rate,
        expected_status: outcome.expected,
        statuses: outcome.stats.statuses.clone(),
        errors: outcome.stats.errors.clone(),
        answered: Dist::of(&outcome.stats.latency),
        answered_raw: Dist::of(&outcome.stats.raw),
        finished: completion.map(|c| Dist::of(&c.end_to_end)),
        throughput: outcome.throughput(),
        per_second: outcome.stats.per_second.clone(),
        accepted: completion.map_or(0, |c| c.accepted),
        finished_count,
        left: completion.map_or(0, |c| c.left),
        drained_after_s: completion.and_then(|c| c.drained_after.map(|d| d.as_secs_f64())),
        finish_rate,
        step_pace: verdict.and_then(|v| v.step_pace),
        backlog: completion.map(|c| c.backlog.clone()).unwrap_or_default(),
        queued: total(&queues),
        queues: queues
            .into_iter()
            .filter(|(_, s)| s.iter().any(|(_, n)| *n > 0))
            .collect(),
        in_flight: outcome.in_flight.clone(),
        window_start_s: outcome.window_start,
        load_end_s,
        records,
        operations,
        resources,
        notes: outcome.notes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CompareArgs,
    }

    fn faults(argv: &[&str]) -> Option<Vec<crate::fault::Fault>> {
        let argv = ["compare"].iter().chain(argv);
        let cli = Cli::try_parse_from(argv).expect("valid arguments");
        cli.args.faults.map(|f| f.concat())
    }

    #[test]
    fn faults_are_chosen_by_name_list_all_or_none() {
        use crate::fault::{ALL, Fault};
        assert_eq!(faults(&[]), None, "the profile's default");
        assert_eq!(faults(&["--faults", "none"]), Some(vec![]));
        assert_eq!(faults(&["--faults", "all"]), Some(ALL.to_vec()));
        assert_eq!(
            faults(&["--faults", "payment,broker", "--faults", "postgres"]),
            Some(vec![
                Fault::Service("payment"),
                Fault::Broker,
                Fault::Postgres
            ])
        );
        assert!(Cli::try_parse_from(["compare", "--faults", "kafka"]).is_err());
    }
}
