//! The one error type of every service.
//!
//! 4xx answers carry a clear message as JSON (`{"detail": ...}`, the shape the
//! seed's FastAPI clients already read). 5xx answers are logged with their
//! whole cause chain and shown to the client without internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The body of every error answer whose body the contract does not spell
/// out otherwise: `{"detail": "..."}`. The OpenAPI documents call it `Error`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What was wrong, for a person to read (a 5xx says no more than its kind).
    pub detail: String,
}

impl ErrorBody {
    fn json(detail: String) -> Value {
        serde_json::to_value(ErrorBody { detail }).unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 422: the request is well formed but its values are not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// 404: the thing asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 409: the request conflicts with the current state (duplicate, no stock).
    #[error("{0}")]
    Conflict(String),
    /// A request the framework refused before our code ran (bad JSON, too large, ...).
    #[error("{message}")]
    Rejected { status: StatusCode, message: String },
    /// 503: a service we depend on is down or too slow; the message is ours, never a cause.
    #[error("{0}")]
    Unavailable(String),
    /// An answer whose body the contract spells out (e.g. the declined saga's 400).
    #[error("{status}: {body}")]
    Body { status: StatusCode, body: Value },
    /// 500: anything else. Logged with its cause chain, opaque to the client.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Rejected { status, .. } | Error::Body { status, .. } => *status,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The same error for each request that shared the work which failed (a
    /// batch): the same status and message; a 500 keeps its cause chain as text.
    pub fn shared(&self) -> Self {
        match self {
            Error::Invalid(m) => Error::Invalid(m.clone()),
            Error::NotFound(m) => Error::NotFound(m.clone()),
            Error::Conflict(m) => Error::Conflict(m.clone()),
            Error::Rejected { status, message } => Error::Rejected {
                status: *status,
                message: message.clone(),
            },
            Error::Unavailable(m) => Error::Unavailable(m.clone()),
            Error::Body { status, body } => Error::Body {
                status: *status,
                body: body.clone(),
            },
            Error::Internal(e) => Error::Internal(anyhow::anyhow!("{e:#}")),
        }
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Error::NotFound(format!("{what} not found"))
    }
}

/// The 503's `detail` when the database cannot be reached.
pub const DATABASE_UNAVAILABLE: &str = "database unavailable";
/// The 503's `detail` when the message broker cannot be reached (async mode).
pub const BROKER_UNAVAILABLE: &str = "message broker unavailable";

impl From<sqlx::Error> for Error {
    /// Losing the database is a fault of a dependency, like a service being
    /// down: 503, logged with its cause. Anything else it says is a 500.
    fn from(e: sqlx::Error) -> Self {
        if database_unreachable(&e) {
            tracing::error!(error = %e, "{DATABASE_UNAVAILABLE}");
            return Error::Unavailable(DATABASE_UNAVAILABLE.into());
        }
        Error::Internal(e.into())
    }
}

fn database_unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_) => true,
        // 08: connection exception; 57P: operator intervention (shutdown); 3D000: no such database.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P") || c == "3D000"),
        _ => false,
    }
}

impl From<garde::Report> for Error {
    fn from(report: garde::Report) -> Self {
        let message = report
            .iter()
            .map(|(path, e)| {
                let path = path.to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect::<Vec<_>>()
            .join("; ");
        Error::Invalid(message)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match self {
            Error::Body { body, .. } => body,
            Error::Internal(cause) => {
                tracing::error!(error = format!("{cause:#}"), "request failed");
                ErrorBody::json("internal server error".to_owned())
            }
            Error::Unavailable(message) => {
                tracing::warn!(%message, "dependency unavailable");
                ErrorBody::json(message)
            }
            other => ErrorBody::json(other.to_string()),
        };
        (status, Json(body)).into_response()
    }
}
