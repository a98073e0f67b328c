//! The correlation id that follows a request through every hop.
//!
//! It is the `x-request-id` header: taken from the caller when present,
//! minted otherwise, put on every log line of the request (the request span),
//! and sent on every outbound call, including those made from sync worker
//! threads, where a tokio task-local cannot reach.

use std::cell::RefCell;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static TASK_ID: String;
}

thread_local! {
    static THREAD_ID: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// The correlation id of the request being served, on a task or a worker thread.
pub fn current() -> Option<String> {
    TASK_ID
        .try_with(Clone::clone)
        .ok()
        .or_else(|| THREAD_ID.with(|id| id.borrow().clone()))
}

/// Runs blocking `work` with `id` as the current correlation id of this thread.
pub fn within<T>(id: Option<String>, work: impl FnOnce() -> T) -> T {
    let previous = THREAD_ID.with(|slot| slot.replace(id));
    let result = work();
    THREAD_ID.with(|slot| *slot.borrow_mut() = previous);
    result
}

/// Middleware: makes the request's `x-request-id` current for its handler.
pub async fn scope(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    TASK_ID.scope(id, next.run(req)).await
}

/// Runs `work` with `id` as its correlation id (a consumer handling a message).
pub async fn scoped<F: std::future::Future>(id: String, work: F) -> F::Output {
    TASK_ID.scope(id, work).await
}
