//! Consuming: manual acks only after the handler's work committed, bounded
//! prefetch, bounded retries with doubling backoff, then the dead letters.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use uuid::Uuid;

use super::{Envelope, Link};
use crate::events::{BoxFuture, Consumer, Handle, Incoming};
use crate::topology::DEAD;
use crate::{Ctx, Error, Result, correlation};

/// Consumes one queue until the connection breaks or the service stops.
pub(super) async fn run(ctx: Ctx, link: Link, consumer: &'static Consumer) {
    if let Err(e) = consume(&ctx, &link, consumer).await {
        tracing::warn!(service = ctx.name(), queue = consumer.queue, error = %e, "consumer stopped");
    }
    // Whatever ended the loop, this connection is no longer fully serving.
    link.alive.cancel();
}

async fn consume(ctx: &Ctx, link: &Link, consumer: &'static Consumer) -> anyhow::Result<()> {
    use futures_util::StreamExt;
    let settings = ctx.bus.settings().clone();
    let prefetch = (consumer.prefetch)(&ctx.settings);
    let channel = link.connection.create_channel().await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    let tag = format!("{}-{}", ctx.name(), Uuid::new_v4().simple());
    let mut stream = channel
        .basic_consume(
            ctx.bus.name(consumer.queue).into(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let handlers = TaskTracker::new();
    let result = loop {
        let next = tokio::select! {
            () = link.alive.cancelled() => break Ok(()),
            () = ctx.shutdown.cancelled() => break Ok(()),
            next = stream.next() => next,
        };
        let delivery = match next {
            None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
            Some(Err(e)) => break Err(e.into()),
            Some(Ok(delivery)) => delivery,
        };
        match consumer.handle {
            Handle::One(f) => {
                handlers.spawn(one(ctx.clone(), consumer.queue, f, delivery));
            }
            Handle::Batch(f) => {
                let mut batch = vec![delivery];
                let deadline = tokio::time::Instant::now() + settings.click_batch_wait;
                while batch.len() < usize::from(prefetch) {
                    match tokio::time::timeout_at(deadline, stream.next()).await {
                        Ok(Some(Ok(delivery))) => batch.push(delivery),
                        _ => break,
                    }
                }
                handle_batch(ctx, consumer.queue, f, batch).await;
            }
        }
    };
    handlers.close();
    handlers.wait().await;
    result
}

type Run = Box<dyn Fn(Incoming) -> BoxFuture<Result<()>> + Send + Sync>;

async fn one(
    ctx: Ctx,
    queue: &'static str,
    f: fn(Ctx, Incoming) -> BoxFuture<Result<()>>,
    delivery: Delivery,
) {
    let Some(msg) = received(&ctx, queue, &delivery).await else {
        return;
    };
    let handler = ctx.clone();
    let run: Run = Box::new(move |m| f(handler.clone(), m));
    attempt(&ctx, &run, msg, &delivery).await;
}

/// A batch is handled in one go; if that fails, each message is handled on
/// its own with the usual retries, so one bad message cannot hold up the rest.
async fn handle_batch(
    ctx: &Ctx,
    queue: &'static str,
    f: fn(Ctx, Vec<Incoming>) -> BoxFuture<Result<()>>,
    deliveries: Vec<Delivery>,
) {
    let mut batch = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if let Some(msg) = received(ctx, queue, &delivery).await {
            batch.push((msg, delivery));
        }
    }
    if batch.is_empty() {
        return;
    }
    let messages = batch.iter().map(|(m, _)| m.clone()).collect();
    let span = tracing::info_span!(target: crate::phases::WORK, "message", service = ctx.name(), queue, size = batch.len());
    let start = std::time::Instant::now();
    match guarded(String::new(), f(ctx.clone(), messages))
        .instrument(span.clone())
        .await
    {
        Ok(()) => {
            for (msg, delivery) in &batch {
                acked(ctx, msg, delivery, "ok")
                    .instrument(span.clone())
                    .await;
            }
            // Per message, like the others: the batch's time shared out.
            let each = start.elapsed() / u32::try_from(batch.len()).unwrap_or(u32::MAX);
            span.in_scope(|| {
                for _ in &batch {
                    crate::phases::record(crate::phases::Phase::Handled, each);
                }
            });
        }
        Err(e) => {
            tracing::warn!(queue, size = batch.len(), error = %e, "batch failed; handling its messages one by one");
            let handler = ctx.clone();
            let run: Run = Box::new(move |m| f(handler.clone(), vec![m]));
            for (msg, delivery) in batch {
                attempt(ctx, &run, msg, &delivery).await;
            }
        }
    }
}

/// Reads a delivery; one that cannot be read is dead-lettered at once (no
/// retry can fix it).
async fn received(ctx: &Ctx, queue: &'static str, delivery: &Delivery) -> Option<Incoming> {
    match decode(queue, delivery) {
        Ok(msg) => {
            if let Some(published) = msg.published_at {
                metrics::histogram!("message_queue_wait_seconds", "service" => ctx.name(), "mode" => "async", "queue" => queue)
                    .record(crate::events::seconds_since(published));
            }
            Some(msg)
        }
        Err(reason) => {
            dead_letter(ctx, queue, delivery, &reason, 0).await;
            None
        }
    }
}

/// Runs the handler until it succeeds, the database is down (requeued for
/// later: not the message's fault), or `CONSUMER_MAX_ATTEMPTS` are used up
/// (dead-lettered with the reason).
async fn attempt(ctx: &Ctx, run: &Run, msg: Incoming, delivery: &Delivery) {
    let settings = ctx.bus.settings();
    let span = tracing::info_span!(target: crate::phases::WORK, "message", service = ctx.name(), queue = msg.queue, kind = %msg.kind, message_id = %msg.id, correlation_id = %msg.correlation_id);
    let start = std::time::Instant::now();
    async {
        let mut tries = 1;
        loop {
            match guarded(msg.correlation_id.clone(), run(msg.clone())).await {
                Ok(()) => return acked(ctx, &msg, delivery, "ok").await,
                Err(Error::Unavailable(reason)) => {
                    tracing::warn!(%reason, "cannot handle the message now; requeued");
                    tokio::time::sleep(settings.retry_base).await;
                    let requeue = BasicNackOptions { requeue: true, ..Default::default() };
                    let _ = delivery.nack(requeue).await;
                    return consumed(ctx, &msg, "requeued");
                }
                Err(e) if tries < settings.max_attempts => {
                    tracing::warn!(attempt = tries, error = %e, "message failed; will retry");
                    metrics::counter!("messages_retried_total", "service" => ctx.name(), "mode" => "async", "queue" => msg.queue).increment(1);
                    tokio::time::sleep(backoff(settings.retry_base, tries)).await;
                    tries += 1;
                }
                Err(e) => {
                    let reason = format!("failed {tries} times: {e}");
                    return dead_letter(ctx, msg.queue, delivery, &reason, tries).await;
                }
            }
        }
    }
    .instrument(span.clone())
    .await;
    span.in_scope(|| handled(start));
}

/// A message's whole handling, delivery to ack (or to its requeue).
fn handled(start: std::time::Instant) {
    crate::phases::record(crate::phases::Phase::Handled, start.elapsed());
}

fn backoff(base: Duration, tries: u32) -> Duration {
    base.saturating_mul(1 << (tries - 1).min(10))
}

/// Runs a handler on its own task, so that a panic is an error like any other.
async fn guarded(correlation_id: String, work: BoxFuture<Result<()>>) -> Result<()> {
    let span = tracing::Span::current();
    tokio::spawn(correlation::scoped(correlation_id, work).instrument(span))
        .await
        .unwrap_or_else(|e| Err(anyhow::anyhow!("handler panicked: {e}").into()))
}

async fn acked(ctx: &Ctx, msg: &Incoming, delivery: &Delivery, outcome: &'static str) {
    let start = std::time::Instant::now();
    let ack = delivery.ack(BasicAckOptions::default()).await;
    crate::phases::record(crate::phases::Phase::Ack, start.elapsed());
    if let Err(e) = ack {
        // The work is committed; the broker will redeliver and the inbox skip it.
        tracing::debug!(error = %e, "ack failed");
    }
    consumed(ctx, msg, outcome);
}

fn consumed(ctx: &Ctx, msg: &Incoming, outcome: &'static str) {
    metrics::counter!("messages_consumed_total", "service" => ctx.name(), "mode" => "async", "queue" => msg.queue, "outcome" => outcome).increment(1);
}

/// Moves a message to the dead letters with the reason, then acks it. If the
/// dead letters cannot be reached, it goes back to its queue instead: never lost.
async fn dead_letter(
    ctx: &Ctx,
    queue: &'static str,
    delivery: &Delivery,
    reason: &str,
    tries: u32,
) {
    let props = &delivery.properties;
    let mut headers = FieldTable::default();
    headers.insert("x-reason".into(), AMQPValue::LongString(reason.into()));
    headers.insert("x-queue".into(), AMQPValue::LongString(queue.into()));
    headers.insert("x-attempts".into(), AMQPValue::LongUInt(tries));
    let kind = props
        .kind()
        .as_ref()
        .map_or_else(|| delivery.routing_key.as_str(), |k| k.as_str());
    let envelope = Envelope {
        id: props
            .message_id()
            .as_ref()
            .and_then(|id| id.as_str().parse().ok())
            .unwrap_or_else(Uuid::new_v4),
        kind,
        correlation_id: props.correlation_id().as_ref().map_or("", |c| c.as_str()),
        accepted_at: header_time(props.headers().as_ref(), "accepted_at").unwrap_or_else(Utc::now),
    };
    let sent = match ctx
        .bus
        .send(DEAD, queue, &envelope, &delivery.data, Some(headers))
        .await
    {
        Ok(confirm) => confirm.await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(()) => {
            tracing::error!(service = ctx.name(), queue, kind, message_id = %envelope.id, reason, "message dead-lettered");
            metrics::counter!("messages_dead_lettered_total", "service" => ctx.name(), "mode" => "async", "queue" => queue).increment(1);
            let _ = delivery.ack(BasicAckOptions::default()).await;
        }
        Err(e) => {
            tracing::warn!(queue, error = %e, "cannot dead-letter the message; requeued");
            let requeue = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            let _ = delivery.nack(requeue).await;
        }
    }
}

fn decode(queue: &'static str, delivery: &Delivery) -> std::result::Result<Incoming, String> {
    let props = &delivery.properties;
    let id = props
        .message_id()
        .as_ref()
        .and_then(|id| id.as_str().parse::<Uuid>().ok())
        .ok_or("unreadable: no message id (a uuid)")?;
    let headers = props.headers().as_ref();
    Ok(Incoming {
        id,
        kind: props
            .kind()
            .as_ref()
            .map_or_else(|| delivery.routing_key.to_string(), |k| k.to_string()),
        correlation_id: props
            .correlation_id()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        accepted_at: header_time(headers, "accepted_at").unwrap_or_else(Utc::now),
        published_at: header_time(headers, "published_at"),
        body: delivery.data.clone(),
        queue,
    })
}

fn header_time(headers: Option<&FieldTable>, name: &str) -> Option<DateTime<Utc>> {
    match headers?.inner().get(name)? {
        AMQPValue::LongLongInt(micros) => DateTime::from_timestamp_micros(*micros),
        _ => None,
    }
}
