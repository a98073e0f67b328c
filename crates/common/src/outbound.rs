//! Blocking HTTP calls to other services: sync mode's way of asking.
//!
//! A call blocks the worker thread it runs on until the other service answers
//! or a timeout (`OUTBOUND_CONNECT_TIMEOUT_MS`, `OUTBOUND_TIMEOUT_MS`) fires.
//! Calls are timed into `outbound_request_duration_seconds` by target and
//! outcome, and into the phases `call` and `call_overhead` (the call less
//! the callee's own time, which it sends back in `Server-Timing`); they
//! carry the request's correlation id.

use std::time::Instant;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::phases::{self, Phase};
use crate::{MODE, Settings, correlation};

/// Why a call to another service did not give a 2xx answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{target} is unreachable")]
    Unreachable { target: &'static str },
    #[error("{target} did not answer in time")]
    TimedOut { target: &'static str },
    #[error("{target} answered {status}")]
    Status {
        target: &'static str,
        status: u16,
        body: Value,
    },
    #[error("{target} gave an answer we cannot read: {reason}")]
    Unreadable {
        target: &'static str,
        reason: String,
    },
}

impl CallError {
    /// The status of a non-2xx answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The `detail` message of a non-2xx JSON answer.
    pub fn detail(&self) -> Option<&str> {
        match self {
            CallError::Status { body, .. } => body.get("detail").and_then(Value::as_str),
            _ => None,
        }
    }

    fn outcome(&self) -> String {
        match self {
            CallError::Unreachable { .. } => "unreachable".into(),
            CallError::TimedOut { .. } => "timeout".into(),
            CallError::Status { status, .. } => format!("http_{status}"),
            CallError::Unreadable { .. } => "unreadable".into(),
        }
    }
}

pub struct Outbound {
    client: reqwest::blocking::Client,
    service: &'static str,
}

impl Outbound {
    /// Builds the client. Call it off the async runtime (reqwest's blocking
    /// client starts a thread of its own and waits for it).
    pub fn new(service: &'static str, settings: &Settings) -> anyhow::Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(settings.outbound_connect_timeout)
            .timeout(settings.outbound_timeout)
            .pool_max_idle_per_host(settings.sync_workers)
            .user_agent(format!("lab-{service}-{MODE}"))
            .build()?;
        Ok(Outbound { client, service })
    }

    /// POSTs `body` as JSON to `url` and blocks until the answer; call it on a sync worker.
    pub fn post<B, R>(&self, target: &'static str, url: &str, body: &B) -> Result<R, CallError>
    where
        B: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let start = Instant::now();
        let mut request = self.client.post(url).json(body);
        if let Some(id) = correlation::current().filter(|id| !id.is_empty()) {
            request = request.header(correlation::HEADER, id);
        }
        let mut answered_in = None;
        let result = request
            .send()
            .map_err(|e| transport_error(target, &e))
            .and_then(|response| {
                answered_in = crate::metrics::server_timing(response.headers());
                read(target, response)
            });
        let took = start.elapsed();
        phases::record_for(Phase::Call, target, took);
        if let Some(answered_in) = answered_in {
            phases::record_for(
                Phase::CallOverhead,
                target,
                took.saturating_sub(answered_in),
            );
        }
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.outcome(),
        };
        metrics::histogram!(
            "outbound_request_duration_seconds",
            "service" => self.service,
            "mode" => MODE.as_str(),
            "target" => target,
            "outcome" => outcome,
        )
        .record(took.as_secs_f64());
        if let Err(e) = &result {
            tracing::warn!(target_service = target, error = %e, "outbound call failed");
        }
        result
    }
}

fn transport_error(target: &'static str, e: &reqwest::Error) -> CallError {
    if e.is_timeout() {
        CallError::TimedOut { target }
    } else if e.is_connect() || e.is_request() {
        CallError::Unreachable { target }
    } else {
        CallError::Unreadable {
            target,
            reason: e.to_string(),
        }
    }
}

fn read<R: DeserializeOwned>(
    target: &'static str,
    response: reqwest::blocking::Response,
) -> Result<R, CallError> {
    let status = response.status();
    let bytes = response.bytes().map_err(|e| transport_error(target, &e))?;
    if !status.is_success() {
        return Err(CallError::Status {
            target,
            status: status.as_u16(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| CallError::Unreadable {
        target,
        reason: e.to_string(),
    })
}
