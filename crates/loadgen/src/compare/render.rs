//! The report, written once as a document and rendered twice: `report.md`
//! and `index.html` (self-contained: its plots are inlined, it opens from
//! disk). Every figure comes from `data.json` through [`super::data`].

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::data::{CAPACITY_IS, Data, Dist, Group, LoadKind, PERCENTILES, RunData, Spread, ratio};
use super::plots::{self, ASYNC, ASYNC_FINISHED, SYNC, SYNC_FINISHED, Series};
use crate::stats::human;

enum Block {
    H(u8, String),
    P(String),
    List(Vec<String>),
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// An SVG in the report's directory.
    Plot {
        file: String,
        alt: String,
    },
}

/// `503.2 ms`, `2.01 s`, `840 µs`.
pub fn ms(ms: f64) -> String {
    if !ms.is_finite() {
        return "–".into();
    }
    if ms >= 1000.0 {
        return format!("{:.2} s", ms / 1000.0);
    }
    human(Duration::from_secs_f64(ms.max(0.0) / 1000.0))
}

pub fn per_s(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}/s")
    } else {
        format!("{v:.1}/s")
    }
}

fn times(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.1}×")
    }
}

/// `median` alone for one repetition, else `median (min–max)`.
fn spread(s: Option<Spread>, f: impl Fn(f64) -> String) -> String {
    match s {
        None => "–".into(),
        Some(s) if s.min == s.max => f(s.median),
        Some(s) => format!("{} ({}–{})", f(s.median), f(s.min), f(s.max)),
    }
}

fn scenarios(data: &Data) -> Vec<(usize, String)> {
    let mut seen: Vec<(usize, String)> = data
        .runs
        .iter()
        .map(|r| (r.number, r.scenario.clone()))
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

fn loads(data: &Data, scenario: &str) -> Vec<LoadKind> {
    let mut seen: Vec<LoadKind> = data
        .runs
        .iter()
        .filter(|r| r.scenario == scenario)
        .map(|r| r.load)
        .collect();
    seen.sort();
    seen.dedup();
    seen
}

/// The load whose latencies the headline quotes: the open loop below the
/// async consumers' capacity when it ran (both modes get the same requests at
/// a pace both can keep up with), else the closed loop.
pub fn steady(data: &Data, scenario: &str) -> LoadKind {
    if loads(data, scenario).contains(&LoadKind::OpenBelow) {
        LoadKind::OpenBelow
    } else {
        LoadKind::Closed
    }
}

/// The one line that answers the question for a scenario.
pub fn headline(data: &Data, number: usize, scenario: &str) -> String {
    let load = steady(data, scenario);
    let sync = Group::of(data, scenario, load, "sync");
    let asy = Group::of(data, scenario, load, "async");
    let mut line = format!("{number} {scenario}: ");
    if sync.is_empty() || asy.is_empty() {
        line.push_str("not run in both modes");
        return line;
    }
    match asy.runs[0].rate {
        Some(rate) => {
            let _ = write!(line, "at {} ", per_s(rate));
        }
        None => {
            let _ = write!(line, "at {} clients ", data.settings.clients);
        }
    }
    let (s, a) = (sync.answered(), asy.answered());
    match ratio(s.p50_ms, a.p50_ms) {
        Some(r) if r >= 1.0 => {
            let _ = write!(line, "async answers {} sooner", times(r));
        }
        Some(r) => {
            let _ = write!(line, "async answers {} later", times(1.0 / r));
        }
        None => line.push_str("no answers to compare"),
    }
    let _ = write!(line, " (p50 {} vs {} sync)", ms(a.p50_ms), ms(s.p50_ms));
    match asy.finished() {
        Some(f) => {
            let _ = write!(
                line,
                " and finishes p50 {} after sending{}",
                ms(f.p50_ms),
                unfinished(&asy, data.settings.drain_timeout_s)
            );
        }
        None => {
            line.push_str(" (its effects are checked in the stack's records, not timed one by one)")
        }
    }
    let sync = Group::of(data, scenario, LoadKind::Closed, "sync");
    let asy = Group::of(data, scenario, LoadKind::Closed, "async");
    if !sync.is_empty() && !asy.is_empty() {
        let st = sync
            .spread(|r| Some(r.throughput))
            .map_or(0.0, |s| s.median);
        let at = asy.spread(|r| Some(r.throughput)).map_or(0.0, |s| s.median);
        let _ = write!(
            line,
            "; at saturation ({} clients) async accepts {} vs {} sync",
            data.settings.clients,
            per_s(at),
            per_s(st)
        );
        if let Some(rate) = asy.spread(|r| r.finish_rate) {
            let _ = write!(
                line,
                " and finishes {}{}",
                per_s(rate.median),
                unfinished(&asy, data.settings.drain_timeout_s)
            );
        }
    }
    let problems: usize = loads(data, scenario)
        .into_iter()
        .flat_map(|l| ["sync", "async"].map(|m| Group::of(data, scenario, l, m).problems().len()))
        .sum();
    if problems > 0 {
        let _ = write!(line, " — ⚠ {problems} finding(s) in the report");
    }
    line
}

/// ` (N of M accepted still unfinished when the drain timed out)`, or nothing.
fn unfinished(group: &Group<'_>, drain_timeout_s: f64) -> String {
    let left: u64 = group.runs.iter().map(|r| r.left).sum();
    if left == 0 {
        return String::new();
    }
    let accepted: u64 = group.runs.iter().map(|r| r.accepted).sum();
    format!(
        " ({left} of {accepted} accepted still unfinished {drain_timeout_s:.0} s after the load)"
    )
}

fn latency_rows(group: &Group<'_>, mode: &str, open: bool) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let per_run = |what: &str, f: &dyn Fn(&RunData) -> Option<Dist>| {
        let mut row = vec![format!("{mode} {what}")];
        for p in PERCENTILES {
            row.push(spread(group.spread(|r| f(r).map(|d| d.get(p))), ms));
        }
        row.push(spread(
            group.spread(|r| f(r).map(|d| d.count as f64)),
            |v| format!("{v:.0}"),
        ));
        row
    };
    rows.push(per_run(
        if open {
            "answered (from when due)"
        } else {
            "answered"
        },
        &|r| Some(r.answered.clone()),
    ));
    if open {
        rows.push(per_run("answered (from actual send)", &|r| {
            Some(r.answered_raw.clone())
        }));
    }
    if mode == "async" {
        if group.runs.iter().any(|r| r.finished.is_some()) {
            rows.push(per_run("finished (sent → done)", &|r| r.finished.clone()));
        }
    } else {
        rows.push(vec![
            "sync finished".into(),
            "= answered".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    rows
}

fn work_row(group: &Group<'_>, mode: &str) -> Vec<String> {
    let first = group.runs[0];
    let statuses = |r: &RunData| {
        let expected = r.expected_answers();
        let unexpected = r.unexpected();
        format!(
            "{expected} × {} expected, {unexpected} unexpected",
            r.expected_status
        )
    };
    vec![
        mode.into(),
        spread(group.spread(|r| Some(r.throughput)), per_s),
        spread(group.spread(|r| r.finish_rate), per_s),
        statuses(first),
        spread(group.spread(|r| r.drained_after_s), |s| format!("{s:.1} s")),
        spread(
            group.spread(|r| (r.mode == "async").then_some(r.left as f64)),
            |v| format!("{v:.0}"),
        ),
        match &first.records {
            Some(rec) if rec.error.is_none() => {
                format!("{} started, {} not final", rec.started, rec.unfinished)
            }
            Some(rec) => format!("unread: {}", rec.error.clone().unwrap_or_default()),
            None => "unread".into(),
        },
    ]
}

/// CPU and memory at the steady load, where both modes finish all they
/// accept (in a closed loop the async stack accepts far more than it
/// finishes, and CPU per finished operation would mean nothing).
fn resource_rows(data: &Data, scenario: &str) -> Vec<Vec<String>> {
    let load = steady(data, scenario);
    let sync = Group::of(data, scenario, load, "sync");
    let asy = Group::of(data, scenario, load, "async");
    let mut names: Vec<String> = sync
        .runs
        .iter()
        .chain(&asy.runs)
        .flat_map(|r| r.resources.iter().map(|u| u.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    // Services first, then the servers and the driver.
    names.sort_by_key(|n| matches!(n.as_str(), "postgresql" | "rabbitmq" | "lab-load"));
    names
        .into_iter()
        .map(|name| {
            let cpu =
                |g: &Group<'_>| spread(g.spread(|r| r.cpu_per_1000(&name)), |v| format!("{v:.3}"));
            // Memory per service; PostgreSQL's and RabbitMQ's processes share
            // memory, so a sum over them would say nothing.
            // The driver is one process for the whole report: its peak is
            // not a run's.
            let server = matches!(name.as_str(), "postgresql" | "rabbitmq" | "lab-load");
            let rss = |g: &Group<'_>| {
                if server {
                    return "–".to_owned();
                }
                spread(
                    g.spread(|r| {
                        r.resources
                            .iter()
                            .find(|u| u.name == name)
                            .map(|u| u.peak_rss_mb)
                    }),
                    |v| format!("{v:.1}"),
                )
            };
            vec![name.clone(), cpu(&sync), cpu(&asy), rss(&sync), rss(&asy)]
        })
        .collect()
}

fn percentile_series(data: &Data, scenario: &str, load: LoadKind) -> Vec<Series> {
    let mut series = Vec::new();
    let sync = Group::of(data, scenario, load, "sync");
    let asy = Group::of(data, scenario, load, "async");
    if !sync.is_empty() {
        series.push(Series {
            label: "sync answered (= finished)".into(),
            color: SYNC,
            width: 3,
            points: sync.answered().by_percentile(),
        });
    }
    if !asy.is_empty() {
        series.push(Series {
            label: "async answered".into(),
            color: ASYNC,
            width: 3,
            points: asy.answered().by_percentile(),
        });
        if let Some(f) = asy.finished() {
            series.push(Series {
                label: "async finished".into(),
                color: ASYNC_FINISHED,
                width: 2,
                points: f.by_percentile(),
            });
        }
    }
    series
}

fn first<'a>(data: &'a Data, scenario: &str, load: LoadKind, mode: &str) -> Option<&'a RunData> {
    Group::of(data, scenario, load, mode).runs.first().copied()
}

/// The async capacity the open loops' rates were set from: its first closed
/// loop's ([`RunData::capacity`]).
pub fn capacity(data: &Data, scenario: &str) -> Option<f64> {
    first(data, scenario, LoadKind::Closed, "async").map(RunData::capacity)
}

fn throughput_series(data: &Data, scenario: &str) -> Vec<Series> {
    [("sync", SYNC), ("async", ASYNC)]
        .into_iter()
        .filter_map(|(mode, color)| {
            let run = first(data, scenario, LoadKind::Closed, mode)?;
            Some(Series {
                label: format!("{mode} answers per second"),
                color,
                width: 3,
                points: run
                    .per_second
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (run.window_start_s + i as f64 + 0.5, *n as f64))
                    .collect(),
            })
        })
        .collect()
}

fn backlog_series(data: &Data, scenario: &str, load: LoadKind) -> Vec<Series> {
    let mut series = Vec::new();
    let points = |v: &[(f64, i64)]| v.iter().map(|(t, n)| (*t, *n as f64)).collect();
    if let Some(run) = first(data, scenario, load, "sync") {
        series.push(Series {
            label: "sync: requests waiting for their answer".into(),
            color: SYNC,
            width: 3,
            points: points(&run.in_flight),
        });
    }
    if let Some(run) = first(data, scenario, load, "async") {
        if !run.backlog.is_empty() {
            series.push(Series {
                label: "async: accepted, not finished".into(),
                color: ASYNC_FINISHED,
                width: 3,
                points: run.backlog.iter().map(|(t, n)| (*t, *n as f64)).collect(),
            });
        }
        series.push(Series {
            label: "async: messages waiting in queues".into(),
            color: ASYNC,
            width: 2,
            points: run.queued.iter().map(|(t, n)| (*t, *n as f64)).collect(),
        });
        series.push(Series {
            label: "async: requests waiting for their answer".into(),
            color: SYNC_FINISHED,
            width: 1,
            points: points(&run.in_flight),
        });
    }
    series
}

fn load_title(data: &Data, scenario: &str, load: LoadKind) -> String {
    match first(data, scenario, load, "sync")
        .or_else(|| first(data, scenario, load, "async"))
        .and_then(|r| r.rate)
    {
        Some(rate) => {
            let share = match load {
                LoadKind::OpenAbove => data.settings.above_share,
                _ => data.settings.below_share,
            };
            let of = capacity(data, scenario)
                .map(|c| format!("; {share}× the async capacity, {}", per_s(c)))
                .unwrap_or_default();
            format!(
                "{} ({} requests/s, both modes{of})",
                load.title(),
                per_s(rate).trim_end_matches("/s")
            )
        }
        None => format!(
            "{} ({} clients back to back)",
            load.title(),
            data.settings.clients
        ),
    }
}

/// Answered latency by percentile in both reports' closed loops, both modes:
/// the earlier report's lines thin, this one's thick.
fn against_series(before: &Data, now: &Data, scenario: &str) -> Vec<Series> {
    let mut series = Vec::new();
    for (mode, color) in [("sync", SYNC), ("async", ASYNC)] {
        for (when, data, width) in [("before", before, 1), ("now", now, 3)] {
            let group = Group::of(data, scenario, LoadKind::Closed, mode);
            if !group.is_empty() {
                series.push(Series {
                    label: format!("{mode} answered, {when}"),
                    color,
                    width,
                    points: group.answered().by_percentile(),
                });
            }
        }
    }
    series
}

/// The differences from an earlier report, with those beyond the spread flagged.
pub fn differences(before: &Data, now: &Data) -> Vec<Vec<String>> {
    type Metric = (&'static str, fn(&RunData) -> Option<f64>, fn(f64) -> String);
    let metrics: [Metric; 4] = [
        ("answered p50", |r| Some(r.answered.p50_ms), ms),
        ("answered p99", |r| Some(r.answered.p99_ms), ms),
        ("finished p50", |r| r.finished_dist().map(|d| d.p50_ms), ms),
        ("answers/s", |r| Some(r.throughput), per_s),
    ];
    let mut rows = Vec::new();
    for (number, scenario) in scenarios(now) {
        for load in loads(now, &scenario) {
            for mode in ["sync", "async"] {
                let (old, new) = (
                    Group::of(before, &scenario, load, mode),
                    Group::of(now, &scenario, load, mode),
                );
                if old.is_empty() || new.is_empty() {
                    continue;
                }
                for (name, f, fmt) in &metrics {
                    let (Some(a), Some(b)) = (old.spread(f), new.spread(f)) else {
                        continue;
                    };
                    let change = (b.median - a.median) / a.median.abs().max(f64::EPSILON) * 100.0;
                    rows.push(vec![
                        format!("{number} {scenario}"),
                        load.slug().into(),
                        mode.into(),
                        (*name).into(),
                        spread(Some(a), fmt),
                        spread(Some(b), fmt),
                        format!("{change:+.1} %"),
                        if a.differs(&b, 0.05) {
                            "beyond the spread".into()
                        } else {
                            String::new()
                        },
                    ]);
                }
            }
        }
    }
    rows
}

fn document(dir: &Path, data: &Data, against: Option<&Data>) -> anyhow::Result<Vec<Block>> {
    let m = &data.machine;
    let mut doc = vec![
        Block::H(1, "Sync vs async: the comparison report".into()),
        Block::P(format!(
            "Made {} by `lab-load compare` ({} profile, {} repetition(s) of every run, each on a fresh stack), commit {}{}, {} build.",
            data.created,
            data.profile,
            data.settings.repetitions,
            &m.commit[..m.commit.len().min(12)],
            if m.dirty {
                " with uncommitted changes"
            } else {
                ""
            },
            m.build,
        )),
    ];
    if m.build != "release" {
        doc.push(Block::P(
            "⚠ Debug build: these figures show the lab working, not what it costs. Use a release build (scripts/compare.sh) for figures to quote.".into(),
        ));
    }
    doc.push(Block::H(2, "The answer".into()));
    doc.push(Block::P(
        "Per scenario: latencies at a rate both modes keep up with (the open loop below the async consumers' capacity; the closed loop in a profile without it), then what each mode sustains at saturation (the closed loop). Medians across repetitions. \"Answered\" is when the client has its answer; \"finished\" is when the work is done (sync: the same moment; async: the stack's own finished time, followed after the answer).".into(),
    ));
    doc.push(Block::List(
        scenarios(data)
            .iter()
            .map(|(n, s)| headline(data, *n, s))
            .collect(),
    ));
    if let Some(before) = against {
        doc.push(Block::H(
            2,
            format!(
                "Against the report of {} (commit {})",
                before.created,
                &before.machine.commit[..before.machine.commit.len().min(12)]
            ),
        ));
        if before.machine.cpu != m.cpu
            || before.machine.cores != m.cores
            || before.settings != data.settings
        {
            doc.push(Block::P(
                "⚠ The machine or the settings differ (see both reports' last sections): differences may not be the code's.".into(),
            ));
        }
        doc.push(Block::P(
            "\"Beyond the spread\": the two reports' ranges across repetitions do not overlap and the medians differ by more than 5 %.".into(),
        ));
        doc.push(Block::Table {
            head: [
                "scenario", "load", "mode", "figure", "before", "now", "change", "",
            ]
            .map(String::from)
            .to_vec(),
            rows: differences(before, data),
        });
        for (number, scenario) in scenarios(data) {
            let series = against_series(before, data, &scenario);
            if series.len() < 2 {
                continue;
            }
            let file = format!("{number}-{scenario}-against.svg");
            plots::by_percentile(
                &dir.join(&file),
                &format!("{number} {scenario}, closed loop: before and now"),
                &series,
            )?;
            doc.push(Block::Plot {
                file,
                alt: format!("{scenario} latency by percentile, before and now"),
            });
        }
    }
    for (number, scenario) in scenarios(data) {
        doc.push(Block::H(2, format!("{number} {scenario}")));
        let mut problems = Vec::new();
        for load in loads(data, &scenario) {
            doc.push(Block::H(3, load_title(data, &scenario, load)));
            let open = load != LoadKind::Closed;
            let mut rows = Vec::new();
            for mode in ["sync", "async"] {
                let group = Group::of(data, &scenario, load, mode);
                if group.is_empty() {
                    continue;
                }
                rows.extend(latency_rows(&group, mode, open));
                problems.extend(
                    group
                        .problems()
                        .into_iter()
                        .map(|p| format!("{mode}, {}, {p}", load.slug())),
                );
            }
            let mut head = vec!["latency".to_owned()];
            head.extend(PERCENTILES.iter().map(|p| p.label().to_owned()));
            head.push("samples".into());
            doc.push(Block::Table { head, rows });
            let file = format!("{number}-{scenario}-latency-{}.svg", load.slug());
            plots::by_percentile(
                &dir.join(&file),
                &format!(
                    "{number} {scenario}, {}: latency by percentile",
                    load.title()
                ),
                &percentile_series(data, &scenario, load),
            )?;
            doc.push(Block::Plot {
                file,
                alt: format!("{scenario} latency by percentile, {}", load.title()),
            });
            doc.push(Block::Table {
                head: [
                    "mode",
                    "answers/s",
                    "finishing/s",
                    "answers (first repetition)",
                    "drained after the load",
                    "left at the drain timeout",
                    "the stack's records (warm-up included)",
                ]
                .map(String::from)
                .to_vec(),
                rows: ["sync", "async"]
                    .into_iter()
                    .filter_map(|mode| {
                        let g = Group::of(data, &scenario, load, mode);
                        (!g.is_empty()).then(|| work_row(&g, mode))
                    })
                    .collect(),
            });
            if load == LoadKind::Closed {
                let file = format!("{number}-{scenario}-throughput.svg");
                plots::over_time(
                    &dir.join(&file),
                    &format!("{number} {scenario}, closed loop: answers per second"),
                    "answers per second",
                    &throughput_series(data, &scenario),
                )?;
                doc.push(Block::Plot {
                    file,
                    alt: format!("{scenario} throughput over time"),
                });
            }
            let backlog_from = if loads(data, &scenario).contains(&LoadKind::OpenAbove) {
                LoadKind::OpenAbove
            } else {
                LoadKind::Closed
            };
            if load == backlog_from {
                let file = format!("{number}-{scenario}-backlog.svg");
                plots::over_time(
                    &dir.join(&file),
                    &format!("{number} {scenario}, {}: work waiting", load.title()),
                    "operations",
                    &backlog_series(data, &scenario, load),
                )?;
                doc.push(Block::Plot {
                    file,
                    alt: format!("{scenario} backlog over time"),
                });
            }
        }
        doc.push(Block::H(
            3,
            format!("CPU and memory ({})", steady(data, &scenario).title()),
        ));
        doc.push(Block::P(
            "CPU seconds per 1,000 operations (finished async operations, or answers as expected), from /proc, from the stack being ready to the end of the reconciliation; peak resident memory (VmHWM) of each service (PostgreSQL's and RabbitMQ's processes share memory, and the driver's peak spans the whole report: not shown). At the steady load, where both modes finish what they accept.".into(),
        ));
        doc.push(Block::Table {
            head: [
                "process",
                "sync CPU s / 1k",
                "async CPU s / 1k",
                "sync peak MB",
                "async peak MB",
            ]
            .map(String::from)
            .to_vec(),
            rows: resource_rows(data, &scenario),
        });
        if !problems.is_empty() {
            doc.push(Block::P(
                "⚠ Findings: unexpected answers, work unfinished or wrong in the stack's records (never averaged away):".into(),
            ));
            doc.push(Block::List(problems));
        }
    }
    doc.push(Block::H(
        2,
        "Faults: a component restarted under load".into(),
    ));
    if data.faults.is_empty() {
        doc.push(Block::P("Not run (`--faults none`).".into()));
    } else {
        doc.push(Block::P(
            "Each on a fresh stack: the scenario whose work crosses the component, at its steady rate (the open loop below capacity above, a load both modes carry; 20 clients back to back where that scenario was not run), and in its middle the component stopped and started for real (a service through `lab up`'s control endpoint, RabbitMQ by `rabbitmqctl stop_app`/`start_app`, PostgreSQL by `pg_ctlcluster`). Failed answers are counted by status (each is a request sent on schedule that failed; back to back, clients send their next request at once, so a refused connection is counted many times); \"clients good again\" is from the component back (its start command returned) to the first expected answer no failure followed; async work is followed to its end and the stack's records reconciled (final, nothing charged or sent twice).".into(),
        ));
        doc.push(Block::Table {
            head: crate::fault::COLUMNS.map(String::from).to_vec(),
            rows: data
                .faults
                .iter()
                .map(crate::fault::FaultRun::cells)
                .collect(),
        });
        let broken: Vec<String> = data
            .faults
            .iter()
            .filter(|f| !f.holds())
            .map(|f| format!("{} restarted, {} mode: {}", f.fault, f.mode, f.records))
            .collect();
        if !broken.is_empty() {
            doc.push(Block::P("⚠ Findings:".into()));
            doc.push(Block::List(broken));
        }
    }
    doc.push(Block::H(2, "Machine and settings".into()));
    let s = &data.settings;
    let mut rows = vec![
        vec!["CPU".into(), format!("{} ({} cores)", m.cpu, m.cores)],
        vec!["memory".into(), format!("{} GiB", m.memory_gib)],
        vec!["kernel".into(), m.kernel.clone()],
        vec!["rustc".into(), m.rustc.clone()],
        vec!["PostgreSQL".into(), m.postgresql.clone()],
        vec!["RabbitMQ".into(), m.rabbitmq.clone()],
        vec![
            "fsync (8 KiB write + fdatasync)".into(),
            format!("p50 {:.0} µs, p99 {:.0} µs", m.fsync_p50_us, m.fsync_p99_us),
        ],
        vec![
            "commit".into(),
            format!("{}{}", m.commit, if m.dirty { " (dirty)" } else { "" }),
        ],
        vec!["build".into(), m.build.clone()],
        vec!["repetitions".into(), s.repetitions.to_string()],
        vec![
            "closed loop".into(),
            format!("{} clients, no think time", s.clients),
        ],
        vec![
            "open loop".into(),
            format!(
                "{}× and {}× the async consumers' capacity, {CAPACITY_IS}; at most {} requests in flight",
                s.below_share, s.above_share, s.max_in_flight
            ),
        ],
        vec![
            "per run".into(),
            format!(
                "{} s warm-up, {} s measured, async work followed up to {} s after",
                s.warmup_s, s.duration_s, s.drain_timeout_s
            ),
        ],
    ];
    if s.stack_env.is_empty() {
        rows.push(vec![
            "stack settings".into(),
            "the services' defaults".into(),
        ]);
    }
    for (k, v) in &s.stack_env {
        rows.push(vec![k.clone(), v.clone()]);
    }
    doc.push(Block::Table {
        head: vec!["".into(), "".into()],
        rows,
    });
    Ok(doc)
}

fn markdown(doc: &[Block]) -> String {
    let mut md = String::new();
    for block in doc {
        match block {
            Block::H(level, text) => {
                let _ = writeln!(md, "{} {text}\n", "#".repeat(usize::from(*level)));
            }
            Block::P(text) => {
                let _ = writeln!(md, "{text}\n");
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(md, "- {item}");
                }
                md.push('\n');
            }
            Block::Table { head, rows } => {
                let cell = |c: &String| c.replace('|', "\\|");
                let _ = writeln!(
                    md,
                    "| {} |",
                    head.iter().map(cell).collect::<Vec<_>>().join(" | ")
                );
                let _ = writeln!(md, "|{}", " --- |".repeat(head.len()));
                for row in rows {
                    let _ = writeln!(
                        md,
                        "| {} |",
                        row.iter().map(cell).collect::<Vec<_>>().join(" | ")
                    );
                }
                md.push('\n');
            }
            Block::Plot { file, alt } => {
                let _ = writeln!(md, "![{alt}]({file})\n");
            }
        }
    }
    md
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn html(dir: &Path, doc: &[Block]) -> anyhow::Result<String> {
    let mut h = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Sync vs async: the comparison report</title>\n<style>\nbody{font:15px/1.5 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\ntable{border-collapse:collapse;margin:.5em 0 1.2em;font-size:13px;display:block;overflow-x:auto;max-width:100%}\ntd,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}\ntd:first-child,th:first-child{text-align:left}\nth{background:#f3f3f3}\nfigure{margin:.5em 0 1.5em}\nsvg{max-width:100%;height:auto}\nh2{border-bottom:1px solid #ddd;margin-top:2em}\n</style></head><body>\n",
    );
    for block in doc {
        match block {
            Block::H(level, text) => {
                let _ = writeln!(h, "<h{level}>{}</h{level}>", escape(text));
            }
            Block::P(text) => {
                let _ = writeln!(h, "<p>{}</p>", escape(text));
            }
            Block::List(items) => {
                h.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(h, "<li>{}</li>", escape(item));
                }
                h.push_str("</ul>\n");
            }
            Block::Table { head, rows } => {
                h.push_str("<table><tr>");
                for c in head {
                    let _ = write!(h, "<th>{}</th>", escape(c));
                }
                h.push_str("</tr>\n");
                for row in rows {
                    h.push_str("<tr>");
                    for c in row {
                        let _ = write!(h, "<td>{}</td>", escape(c));
                    }
                    h.push_str("</tr>\n");
                }
                h.push_str("</table>\n");
            }
            Block::Plot { file, alt } => {
                let svg = std::fs::read_to_string(dir.join(file))?;
                let _ = writeln!(
                    h,
                    "<figure role=\"img\" aria-label=\"{}\">{svg}</figure>",
                    escape(alt)
                );
            }
        }
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

/// Writes the plots, `report.md` and `index.html` into `dir`.
pub fn write(dir: &Path, data: &Data, against: Option<&Data>) -> anyhow::Result<()> {
    let doc = document(dir, data, against)?;
    std::fs::write(dir.join("report.md"), markdown(&doc))?;
    std::fs::write(dir.join("index.html"), html(dir, &doc)?)?;
    Ok(())
}

/// The summary for the terminal: the headlines, and the differences beyond
/// the spread when compared against an earlier report.
pub fn summary_text(data: &Data, against: Option<&Data>) -> String {
    let mut out = String::new();
    for (n, s) in scenarios(data) {
        let _ = writeln!(out, "{}", headline(data, n, &s));
    }
    if let Some(before) = against {
        let flagged: Vec<Vec<String>> = differences(before, data)
            .into_iter()
            .filter(|row| !row[7].is_empty())
            .collect();
        let _ = writeln!(
            out,
            "\nagainst {}: {} figure(s) beyond the run-to-run spread",
            before.created,
            flagged.len()
        );
        for row in flagged {
            let _ = writeln!(
                out,
                "  {} {} {} {}: {} -> {} ({})",
                row[0], row[1], row[2], row[3], row[4], row[5], row[6]
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(load: LoadKind) -> RunData {
        let mut run: RunData =
            serde_json::from_str(include_str!("testdata/run.json")).expect("a run");
        run.load = load;
        run
    }

    #[test]
    fn an_open_loop_shows_the_latency_from_when_due_beside_the_latency_from_the_send() {
        let mut open = run(LoadKind::OpenBelow);
        // A stall: every request waited 400 ms for its turn before it left.
        let mut due = crate::stats::histogram();
        let mut sent = crate::stats::histogram();
        for i in 1..=100u64 {
            due.record(400_000 + i * 1000).expect("in range");
            sent.record(i * 1000).expect("in range");
        }
        open.answered = Dist::of(&due);
        open.answered_raw = Dist::of(&sent);
        let group = Group { runs: vec![&open] };
        let rows = latency_rows(&group, "sync", true);
        assert_eq!(rows[0][0], "sync answered (from when due)");
        assert_eq!(rows[0][1], "450.0 ms", "p50 with the wait");
        assert_eq!(rows[1][0], "sync answered (from actual send)");
        assert_eq!(rows[1][1], "50.0 ms", "p50 without it");
        let closed = run(LoadKind::Closed);
        let rows = latency_rows(
            &Group {
                runs: vec![&closed],
            },
            "sync",
            false,
        );
        assert!(
            rows.iter().all(|r| !r[0].contains("actual send")),
            "closed: one view"
        );
    }
}
