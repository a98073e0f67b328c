//! The README's performance section is the committed report's, as
//! `lab-load readme docs/report/data.json` writes it: never typed by hand.

use std::path::Path;

use loadgen::compare::{read_data, readme};

#[test]
fn the_readme_figures_are_generated_from_the_committed_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = read_data(&root.join("docs/report/data.json")).expect("docs/report/data.json");
    let text = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let expected = readme::replace(&text, &readme::section(&data)).expect("the markers");
    assert!(
        text == expected,
        "the README's performance section is not the committed report's: run `lab-load readme docs/report/data.json`"
    );
    assert_eq!(data.profile, "full", "the committed report is a full one");
    assert_eq!(data.machine.build, "release");
}

#[test]
fn the_committed_report_is_complete_and_small() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/report");
    let data = read_data(&dir.join("data.json")).expect("data.json");
    let mut total = 0;
    for entry in std::fs::read_dir(&dir).expect("docs/report") {
        let path = entry.expect("entry").path();
        total += std::fs::metadata(&path).expect("metadata").len();
    }
    assert!(total < 2 * 1024 * 1024, "docs/report holds {total} bytes");
    let md = std::fs::read_to_string(dir.join("report.md")).expect("report.md");
    for file in md.split("](").skip(1).filter_map(|s| s.split(')').next()) {
        if file.ends_with(".svg") {
            assert!(dir.join(file).is_file(), "report.md shows {file}");
        }
    }
    assert_eq!(
        data.runs.len(),
        data.settings.repetitions * data.settings.scenarios.len() * data.settings.loads.len() * 2
    );
}
