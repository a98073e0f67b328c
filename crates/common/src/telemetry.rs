//! Tracing, installed once per process however many services it runs.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

static INSTALLED: OnceLock<()> = OnceLock::new();

/// Installs the subscriber: human-readable lines, or JSON with `LOG_FORMAT=json`.
/// `RUST_LOG` filters as usual (default `info`).
pub fn init(format: LogFormat) {
    INSTALLED.get_or_init(|| {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
        // Colours only for a person at a terminal, not in files or pipes.
        let ansi = std::io::stdout().is_terminal();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi);
        // A test process may already have a subscriber; keeping it is fine.
        let _ = match format {
            LogFormat::Pretty => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
    });
}
