//! What every service of the lab shares: typed configuration, Postgres access,
//! Prometheus metrics, tracing, the JSON error type, the bounded pool of sync
//! workers, and the [`Delivery`] type through which each service's one mode
//! seam reports what it achieved.

pub mod app;
pub mod batch;
#[cfg(feature = "async")]
pub mod bus;
pub mod config;
pub mod correlation;
pub mod db;
pub mod detach;
pub mod error;
pub mod events;
pub mod extract;
pub mod inbound;
pub mod messages;
pub mod metrics;
pub mod openapi;
/// Sync mode's client, built in both: only sync services call with it, and
/// `lab-load floor` times it whichever build it is.
pub mod outbound;
pub mod phases;
pub mod services;
pub mod telemetry;
pub mod topology;
pub mod workers;

pub use app::{Application, Background, Ctx, ServiceDef};
pub use config::Settings;
pub use error::{Error, ErrorBody, Result};
pub use extract::{JsonBody, PathParam, QueryParams};
pub use services::{MODE, Mode, Replicas, SERVICES, ServiceSpec};

/// What a call through a service's mode seam achieved.
///
/// In sync mode the downstream work has finished and its outcome is known when
/// the seam returns; in async mode the work was durably handed over (an outbox
/// row committed, or a confirmed publish) and finishes later. Handlers match on
/// this once instead of being written once per mode.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery<T> {
    /// The downstream work is finished; here is what it produced.
    Done(T),
    /// The work is durably queued and will be finished by a consumer.
    Accepted,
}
