//! Tracing, installed once per process however many services it runs.

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

static INSTALLED: OnceLock<()> = OnceLock::new();

const DEFAULT: &str = "info,sqlx=warn,tower_http=info";

/// Installs the subscriber: human-readable lines, or JSON with `LOG_FORMAT=json`.
/// `RUST_LOG` filters the lines as usual (default `info`); beside them, the
/// phases of the work go to their histograms ([`crate::phases`]).
pub fn init(format: LogFormat) {
    INSTALLED.get_or_init(|| {
        let asked = std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty());
        let mut filter = asked
            .as_deref()
            .and_then(|v| EnvFilter::try_new(v).ok())
            .unwrap_or_else(|| EnvFilter::new(DEFAULT));
        // sqlx's statements show in the lines only when RUST_LOG names them.
        let statements = asked.as_deref().is_some_and(|v| v.contains("sqlx::query"));
        for directive in crate::phases::DIRECTIVES {
            if !(statements && directive.starts_with("sqlx::query")) {
                filter = filter.add_directive(directive.parse().expect("a valid directive"));
            }
        }
        // Colours only for a person at a terminal, not in files or pipes.
        let ansi = std::io::stdout().is_terminal();
        let lines = tracing_subscriber::fmt::layer().with_ansi(ansi);
        let lines = match format {
            LogFormat::Pretty => lines.boxed(),
            LogFormat::Json => lines.json().flatten_event(true).boxed(),
        };
        // One filter for the whole process (a per-layer filter would cost
        // every span's enter and exit); the lines skip the phase events.
        // A test process may already have a subscriber; keeping it is fine.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(WithoutPhases { lines, statements })
            .with(crate::phases::layer())
            .try_init();
    });
}

/// The log lines, without the events that are only numbers for the phases
/// (sqlx's statements stay when `RUST_LOG` names `sqlx::query`).
struct WithoutPhases<L> {
    lines: L,
    statements: bool,
}

impl<L: Layer<S>, S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for WithoutPhases<L> {
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let statement = meta.target() == "sqlx::query" && self.statements;
        if statement || !crate::phases::is_phase_event(meta) {
            self.lines.on_event(event, ctx);
        }
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.lines.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.lines.on_layer(subscriber);
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.lines.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.lines.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.lines.on_record(span, values, ctx);
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        self.lines.on_follows_from(span, follows, ctx);
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        self.lines.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        self.lines.on_exit(id, ctx);
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        self.lines.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.lines.on_id_change(old, new, ctx);
    }
}
