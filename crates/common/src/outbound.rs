//! Blocking HTTP calls to other services: sync mode's way of asking.
//!
//! A call blocks the worker thread it runs on until the other service answers
//! or a timeout (`OUTBOUND_CONNECT_TIMEOUT_MS`, `OUTBOUND_TIMEOUT_MS`) fires.
//! Calls are timed into `outbound_request_duration_seconds` by target and
//! outcome, and into the phases `call` and `call_overhead` (the call less
//! the callee's own time, which it sends back in `Server-Timing`); they
//! carry the request's correlation id.

use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// Sync mode's blocking HTTP client. Each worker thread that calls out
/// drives its own reqwest client on a runtime of its own, the way
/// `reqwest::blocking` does, except that the runtime runs on the calling
/// thread: the thread blocks in `epoll` on its own socket and the kernel wakes
/// it when the answer arrives, instead of a client thread relaying the request
/// and the answer (two thread hand-offs per call; 0.1-0.3 ms on a 2-core VM).
pub struct Outbound {
    /// This client's key in each thread's [`LOCAL`] (a process may hold several: the tests').
    id: u64,
    service: &'static str,
    settings: ClientSettings,
}

#[derive(Clone, Copy)]
struct ClientSettings {
    connect_timeout: std::time::Duration,
    timeout: std::time::Duration,
}

/// One thread's calls go one at a time: one idle connection per target is its pool.
const IDLE_PER_HOST: usize = 1;

/// A worker thread's runtime and its clients, by [`Outbound::id`].
struct Local {
    runtime: tokio::runtime::Runtime,
    clients: HashMap<u64, reqwest::Client>,
}

thread_local! {
    static LOCAL: RefCell<Option<Local>> = const { RefCell::new(None) };
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

impl Outbound {
    pub fn new(service: &'static str, settings: &Settings) -> anyhow::Result<Self> {
        let outbound = Outbound {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            service,
            settings: ClientSettings {
                connect_timeout: settings.outbound_connect_timeout,
                timeout: settings.outbound_timeout,
            },
        };
        outbound.client()?; // a bad setting fails at start, not at the first call
        Ok(outbound)
    }

    fn client(&self) -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.settings.connect_timeout)
            .timeout(self.settings.timeout)
            .pool_max_idle_per_host(IDLE_PER_HOST)
            .user_agent(format!("lab-{}-{MODE}", self.service))
            .build()
    }

    /// Runs `call` with this thread's client, on this thread's runtime.
    fn on_this_thread<T>(
        &self,
        call: impl AsyncFnOnce(&reqwest::Client) -> Result<T, CallError>,
        target: &'static str,
    ) -> Result<T, CallError> {
        LOCAL.with_borrow_mut(|local| {
            if local.is_none() {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| CallError::Unreadable {
                        target,
                        reason: format!("no runtime for the call: {e}"),
                    })?;
                *local = Some(Local {
                    runtime,
                    clients: HashMap::new(),
                });
            }
            let Local { runtime, clients } = local.as_mut().expect("made above");
            let client = match clients.entry(self.id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => {
                    e.insert(self.client().map_err(|e| transport_error(target, &e))?)
                }
            };
            runtime.block_on(call(client))
        })
    }

    /// POSTs `body` as JSON to `url` and blocks until the answer; call it on a sync worker.
    pub fn post<B, R>(&self, target: &'static str, url: &str, body: &B) -> Result<R, CallError>
    where
        B: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let start = Instant::now();
        let correlation_id = correlation::current().filter(|id| !id.is_empty());
        let mut answered_in = None;
        let result = self.on_this_thread(
            async |client| {
                let mut request = client.post(url).json(body);
                if let Some(id) = correlation_id {
                    request = request.header(correlation::HEADER, id);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| transport_error(target, &e))?;
                answered_in = crate::metrics::server_timing(response.headers());
                read(target, response).await
            },
            target,
        );
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

async fn read<R: DeserializeOwned>(
    target: &'static str,
    response: reqwest::Response,
) -> Result<R, CallError> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| transport_error(target, &e))?;
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
