//! A client that hangs up never leaves work half done.
//!
//! hyper drops a request's future when the client's connection closes. A
//! handler dropped at an `.await` stops there: after its first commit but
//! before the blocking call it was waiting on (a user left `pending`, stock
//! left reserved), or in the middle of a `COMMIT`, which returns the
//! connection to the pool with sqlx's idea of the transaction out of step with
//! the server's (PostgreSQL then warns "there is no transaction in progress").
//! The seed's threaded services never had this problem: a thread is not
//! cancelled.
//!
//! So every request's handler runs on a task of its own, owned by the
//! service's [`TaskTracker`], and the connection only awaits it. A hang-up
//! drops the waiting, never the work: the handler, its commits, its blocking
//! calls and its compensation run to their end, and shutdown waits for them.
//! Being one layer around every route, no handler can opt out by mistake.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{Error, MODE};

/// What the layer needs: where to spawn, and whose requests they are.
#[derive(Clone)]
pub struct Detached {
    pub service: &'static str,
    pub tasks: TaskTracker,
}

/// Middleware: runs the rest of the request on a tracked task and awaits it.
pub async fn run_to_end(State(detached): State<Detached>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut waiting = Waiting {
        service: detached.service,
        route: Some(route),
    };
    let handler = detached
        .tasks
        .spawn(next.run(req).instrument(tracing::Span::current()));
    let response = match handler.await {
        Ok(response) => response,
        Err(e) => Error::Internal(anyhow::anyhow!("request task failed: {e}")).into_response(),
    };
    waiting.route = None;
    response
}

/// Counts `requests_abandoned_total` when dropped while still waiting: the
/// client went away before its answer, and the handler goes on without it.
struct Waiting {
    service: &'static str,
    route: Option<String>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(route) = self.route.take() {
            tracing::info!(route, "client hung up; the request runs to its end");
            metrics::counter!(
                "requests_abandoned_total",
                "service" => self.service,
                "mode" => MODE.as_str(),
                "route" => route,
            )
            .increment(1);
        }
    }
}
