//! `lab-load compare --quick` against real stacks of both modes (the debug
//! builds in target/debug and target/async/debug, which `scripts/test.sh`
//! has built by the time it runs this), with small delays: every file of the
//! report exists and parses, what it shows is what data.json holds, data.json
//! agrees with the stacks' own records, and every plot holds a line per mode.
//!
//! Ignored by a plain `cargo test` (it needs both modes' builds and the
//! stacks' ports); `scripts/test.sh` runs it with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

use loadgen::compare::data::{Data, Group, LoadKind};
use loadgen::compare::{read_data, render};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn lab_load() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lab-load"))
}

/// The service that answers a scenario's requests.
fn service(scenario: &str) -> &'static str {
    loadgen::scenario::Scenario::parse(scenario).expect("a scenario")[0].service()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn check_plots(dir: &Path, data: &Data) {
    for (number, scenario) in [
        (1, "register"),
        (2, "payment"),
        (3, "fanout"),
        (4, "report"),
        (5, "order"),
        (6, "click"),
    ] {
        for (file, sync_label, async_label) in [
            (
                format!("{number}-{scenario}-latency-closed.svg"),
                "sync answered (= finished)",
                "async answered",
            ),
            (
                format!("{number}-{scenario}-latency-open-below.svg"),
                "sync answered (= finished)",
                "async answered",
            ),
            (
                format!("{number}-{scenario}-throughput.svg"),
                "sync answers per second",
                "async answers per second",
            ),
            (
                format!("{number}-{scenario}-backlog.svg"),
                "sync: requests waiting for their answer",
                "async: messages waiting in queues",
            ),
        ] {
            let svg = read(&dir.join(&file));
            assert!(svg.starts_with("<svg"), "{file} is an SVG");
            for label in [sync_label, async_label] {
                assert!(
                    svg.contains(&format!(">\n{label}\n<")),
                    "{file} names {label}"
                );
            }
            // A line per mode, with its points (the throughput plot has one
            // point per second of a 2 s window).
            for color in ["#D66000", "#1F66C4"] {
                assert!(
                    loadgen::compare::plots::line_points(&svg, color)
                        .iter()
                        .any(|n| *n >= 2),
                    "{file}: a line in {color}"
                );
            }
        }
        let sync = Group::of(data, scenario, LoadKind::Closed, "sync");
        let asy = Group::of(data, scenario, LoadKind::Closed, "async");
        assert_eq!((sync.runs.len(), asy.runs.len()), (1, 1), "{scenario}");
    }
}

#[test]
#[ignore = "needs both modes' debug builds and free stack ports: scripts/test.sh runs it"]
fn a_quick_comparison_writes_a_report_that_shows_what_was_measured() {
    let (sync_bin, async_bin) = (
        root().join("target/debug"),
        root().join("target/async/debug"),
    );
    for bin in [&sync_bin, &async_bin] {
        assert!(
            bin.join("lab").is_file(),
            "no {}: build both modes first (scripts/test.sh does)",
            bin.join("lab").display()
        );
    }
    let dir = std::env::temp_dir().join(format!("lab-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut compare = lab_load();
    compare
        .args(["compare", "--quick", "--out"])
        .arg(&dir)
        .arg("--sync-bin")
        .arg(&sync_bin)
        .arg("--async-bin")
        .arg(&async_bin);
    for setting in [
        "EMAIL_DELAY_MS=20",
        "PAYMENT_DELAY_MS=50",
        "SEARCH_DELAY_MS=10",
        "CACHE_DELAY_MS=5",
        "ANALYTICS_DELAY_MS=5",
        "REPORT_ITERATIONS=2000",
    ] {
        compare.args(["--set", setting]);
    }
    let out = compare.output().expect("lab-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lab-load compare failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // data.json: every run, as the driver measured it and the stack recorded it.
    let data = read_data(&dir.join("data.json")).expect("data.json parses");
    assert_eq!(data.profile, "quick");
    assert_eq!(
        data.runs.len(),
        6 * 2 * 2,
        "6 scenarios × 2 loads × 2 modes"
    );
    assert_eq!(data.settings.stack_env["PAYMENT_DELAY_MS"], "50");
    assert!(data.machine.cores > 0 && data.machine.fsync_p50_us > 0.0);
    assert!(
        data.machine
            .postgresql
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    );
    for run in &data.runs {
        let what = format!("{} {} {:?}", run.scenario, run.mode, run.load);
        let answered: u64 = run.statuses.values().sum::<u64>() + run.errors.values().sum::<u64>();
        assert_eq!(
            answered, run.answered.count,
            "{what}: every answer is counted once"
        );
        assert!(run.answered.count > 0, "{what}: answers were measured");
        assert_eq!(
            run.answered.to_histogram().len(),
            run.answered.count,
            "{what}: the stored histogram holds every sample"
        );
        let records = run.records.as_ref().expect("the stack's records were read");
        assert_eq!(records.error, None, "{what}");
        assert!(records.wrong.is_empty(), "{what}: {:?}", records.wrong);
        assert!(
            records.started as u64 >= run.expected_answers(),
            "{what}: the stack recorded at least what it answered"
        );
        if run.mode == "sync" {
            assert_eq!(
                records.unfinished, 0,
                "{what}: sync work is done when answered"
            );
        }
        assert!(
            run.resources.iter().any(|u| u.name == "postgresql")
                && run
                    .resources
                    .iter()
                    .any(|u| u.name == service(&run.scenario)),
            "{what}: CPU and memory of the database and the entry service: {:?}",
            run.resources
        );
        if run.load == LoadKind::OpenBelow {
            assert!(
                run.rate.is_some_and(|r| r >= 1.0),
                "{what}: a measured rate"
            );
        }
        if matches!(run.scenario.as_str(), "fanout" | "click") {
            // Not followed one by one: their pace is read from the stack's
            // records (the effects' own timestamps), never assumed.
            assert!(
                run.finish_rate.is_some_and(|r| r > 0.0),
                "{what}: a finishing pace from the records: {:?}",
                run.finish_rate
            );
        }
        if run.scenario == "order" {
            // The stack starts with 100 units; the driver makes enough
            // available that every order is a saga, none refused for lack
            // of stock (which would finish at once and pass for speed).
            let raised = format!("to {} units", loadgen::scenario::ORDER_STOCK);
            assert!(
                run.notes.iter().any(|n| n.contains(&raised)),
                "{what}: {:?}",
                run.notes
            );
            assert!(
                !run.notes.iter().any(|n| n.contains("lack of stock")),
                "{what}: {:?}",
                run.notes
            );
            assert_eq!(
                run.statuses.keys().copied().collect::<Vec<_>>(),
                [run.expected_status],
                "{what}: only the saga's own answer"
            );
        }
    }

    // report.md and index.html show data.json's figures, the same lines the
    // terminal got.
    let md = read(&dir.join("report.md"));
    let html = read(&dir.join("index.html"));
    for (number, scenario) in
        (1..).zip(["register", "payment", "fanout", "report", "order", "click"])
    {
        let headline = render::headline(&data, number, scenario);
        assert!(
            md.contains(&format!("- {headline}")),
            "report.md: {headline}"
        );
        assert!(stdout.contains(&headline), "the terminal: {headline}");
        let p50 = render::ms(
            Group::of(&data, scenario, LoadKind::Closed, "sync")
                .answered()
                .p50_ms,
        );
        assert!(
            md.contains(&format!("| sync answered | {p50}")),
            "report.md: {scenario} sync p50 {p50}"
        );
    }
    assert!(
        html.contains("<svg") && !html.contains(" src=") && !html.contains(" href="),
        "index.html is self-contained"
    );
    check_plots(&dir, &data);

    // The quick profile restarts payment under the saga, in both modes, at
    // the saga's steady rate (its open loop below capacity): sync answers 503
    // while it is away, async accepts it all and finishes it.
    let modes: Vec<&str> = data.faults.iter().map(|f| f.mode.as_str()).collect();
    assert_eq!(modes, ["sync", "async"]);
    let steady = data
        .runs
        .iter()
        .find(|r| r.scenario == "order" && r.load == LoadKind::OpenBelow)
        .and_then(|r| r.rate)
        .expect("the saga's open loop below capacity");
    for fault in &data.faults {
        assert_eq!(fault.fault, "payment");
        assert_eq!(fault.load, format!("{steady}/s open"));
        assert!(fault.holds(), "{:?}", fault.describe());
        let row = format!("| {} |", fault.cells().join(" | "));
        assert!(md.contains(&row), "report.md: {row}");
    }
    let (sync, asy) = (&data.faults[0], &data.faults[1]);
    assert_eq!(sync.failed.keys().collect::<Vec<_>>(), ["503"]);
    assert!(asy.failed.is_empty(), "{:?}", asy.failed);
    assert_eq!(asy.unfinished, Some(0));

    // Against itself: a differences table, nothing beyond the spread.
    let again = lab_load()
        .arg("render")
        .arg(&dir)
        .arg("--against")
        .arg(dir.join("data.json"))
        .output()
        .expect("lab-load render");
    assert!(again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 figure(s) beyond the run-to-run spread")
    );
    assert!(read(&dir.join("report.md")).contains("+0.0 %"));
    let against = read(&dir.join("1-register-against.svg"));
    for label in [
        "sync answered, before",
        "sync answered, now",
        "async answered, before",
        "async answered, now",
    ] {
        assert!(
            against.contains(&format!(">\n{label}\n<")),
            "the before/now plot names {label}"
        );
    }

    // The README's section, from this data.
    let readme = dir.join("README.md");
    std::fs::write(
        &readme,
        format!(
            "# Lab\n{}\nold\n{}\n",
            loadgen::compare::readme::BEGIN,
            loadgen::compare::readme::END
        ),
    )
    .expect("write");
    let status = lab_load()
        .arg("readme")
        .arg(dir.join("data.json"))
        .arg(&readme)
        .status()
        .expect("lab-load readme");
    assert!(status.success());
    let section = read(&readme);
    assert!(
        section.contains(&render::headline(&data, 1, "register")) && !section.contains("\nold\n")
    );
    std::fs::remove_dir_all(&dir).ok();
}
