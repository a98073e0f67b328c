//! Where a report's work runs: the only place in this service where the mode forks.

use common::events::{About, Consumer};
use common::{Ctx, Delivery, Result};

use crate::Job;

/// Sync: the job's statement writes no event.
#[cfg(not(feature = "async"))]
pub const EVENT: Option<About> = None;

/// Sync: the request itself waits while a worker thread hashes.
#[cfg(not(feature = "async"))]
pub async fn submit(ctx: &Ctx, job: &Job) -> Result<Delivery<Job>> {
    Ok(Delivery::Done(crate::run(ctx, job).await?))
}

/// Async: the queued job's own statement writes its `report.requested`
/// event, which the report worker (`work`) reads.
#[cfg(feature = "async")]
pub const EVENT: Option<About> = Some(About {
    kind: "report.requested",
    payload: "jsonb_build_object('job_id', new.id)",
    accepted_at: "created_at",
});

/// Async: the event committed with the job; a report worker hashes it later.
#[cfg(feature = "async")]
pub async fn submit(ctx: &Ctx, _: &Job) -> Result<Delivery<Job>> {
    ctx.bus.wake_relay();
    Ok(Delivery::Accepted)
}

/// Sync: the hashing is the request's own work, on one of the service's
/// worker threads, at normal priority.
#[cfg(not(feature = "async"))]
pub async fn hash<T: Send + 'static>(
    ctx: &Ctx,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    ctx.workers.run(work).await
}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

/// Async: nobody waits on the hashing, so it runs behind the requests: on a
/// thread of its own under `SCHED_IDLE`, and in an idle cgroup where the
/// machine allows ([`crate::work::behind_requests`]). The cores go to
/// everything else first (requests, consumers, PostgreSQL, the broker) and
/// to reports whenever nothing else needs them. At most `REPORT_WORKERS` at once
/// (the consumer's prefetch). Under a steady load elsewhere reports finish
/// later, or not at all while the cores stay busy: the completion metrics
/// and the driver's backlog show it.
#[cfg(feature = "async")]
pub async fn hash<T: Send + 'static>(
    _: &Ctx,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    let (done, answer) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("report-worker".into())
        .spawn(move || {
            crate::work::behind_requests();
            let _ = done.send(span.in_scope(work));
        })
        .map_err(anyhow::Error::from)?;
    Ok(answer
        .await
        .map_err(|_| anyhow::anyhow!("the report worker thread failed"))?)
}

/// Report workers: `REPORT_WORKERS` jobs hashed at once per instance.
#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "report.jobs",
    prefetch: |settings| settings.broker.report_workers,
    handle: common::events::Handle::One(|ctx, msg| Box::pin(work(ctx, msg))),
}];

/// The job's state makes a redelivery harmless: a completed job is not hashed
/// again (the hash is deterministic anyway).
#[cfg(feature = "async")]
async fn work(ctx: Ctx, msg: common::events::Incoming) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Requested {
        job_id: uuid::Uuid,
    }
    let req: Requested = msg.payload()?;
    let job = crate::find(&ctx, req.job_id).await?;
    if job.status == "completed" {
        return Ok(());
    }
    let done = crate::run(&ctx, &job).await?;
    common::events::completed(&ctx, "report", done.created_at);
    Ok(())
}
