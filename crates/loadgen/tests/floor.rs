//! `lab-load floor` against the real PostgreSQL: it prints a figure for each
//! piece of a sync request and leaves no scratch database behind. The
//! figures themselves are the machine's, so nothing here judges them.

use std::process::{Command, Stdio};

use sqlx::{Connection, PgConnection};

const PIECES: [&str; 6] = [
    "hand-off to a sync worker thread and back",
    "blocking HTTP call over loopback (on a worker)",
    "PostgreSQL round trip (SELECT 1)",
    "committed one-row INSERT (its own transaction)",
    "a blocking sleep's overshoot (on a worker)",
    "an awaited timer's overshoot (tokio)",
];

/// The server the tests use (`TEST_DATABASE_URL`, as lab-tests reads it).
fn postgres() -> String {
    let server = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
    format!("{}/postgres", server.trim_end_matches('/'))
}

#[tokio::test]
async fn the_floor_names_each_piece_with_its_figures_and_drops_its_database() {
    let child = Command::new(env!("CARGO_BIN_EXE_lab-load"))
        .args(["floor", "--samples", "20", "--postgres", &postgres()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("lab-load runs");
    let pid = child.id();
    let out = child.wait_with_output().expect("lab-load finishes");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "lab-load floor failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for piece in PIECES {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(piece))
            .unwrap_or_else(|| panic!("no line for {piece}:\n{stdout}"));
        let figures: Vec<&str> = line[piece.len()..].split_whitespace().collect();
        // p50 and p99 back to back, then after a pause, each a number and a
        // unit; then the samples of each series.
        assert_eq!(figures.len(), 9, "{line}");
        for pair in figures[..8].chunks(2) {
            assert!(pair[0].parse::<f64>().is_ok(), "{line}");
            assert!(["µs", "ms", "s"].contains(&pair[1]), "{line}");
        }
        let (hot, idle) = figures[8].split_once('+').expect("samples");
        assert!(hot.parse::<usize>().expect("samples") >= 4, "{line}");
        assert!(idle.parse::<usize>().expect("samples") >= 1, "{line}");
    }
    let mut db = PgConnection::connect(&postgres())
        .await
        .expect("PostgreSQL");
    let left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(format!("lab_floor_{pid}"))
            .fetch_one(&mut db)
            .await
            .expect("pg_database");
    assert!(!left, "lab-load floor left its scratch database behind");
}
