//! What the tests that start whole stacks share: where the debug builds
//! are (`scripts/test.sh` has built both by the time it runs them) and the
//! PostgreSQL and RabbitMQ the stacks use.

use std::path::{Path, PathBuf};

use common::Mode;
use loadgen::stack::Infra;

/// The mode's debug build: target/debug, target/async/debug.
pub fn bin(mode: Mode) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    match mode {
        Mode::Sync => root.join("target/debug"),
        Mode::Async => root.join("target/async/debug"),
    }
}

/// The machine's PostgreSQL and RabbitMQ, as `scripts/ensure-services.sh` starts them.
pub fn infra() -> Infra {
    Infra {
        postgres: "postgres://postgres@127.0.0.1:5432/postgres".into(),
        amqp: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
    }
}
