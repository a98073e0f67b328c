//! The async mode's connection to RabbitMQ (lapin): one connection per
//! service, kept alive by a supervisor that reconnects, redeclares the
//! topology and restarts the consumers by itself; publishing with publisher
//! confirms; the outbox relay; the consumers with retries and dead letters.

mod consume;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::Broker;
use crate::error::BROKER_UNAVAILABLE;
use crate::events::Consumer;
use crate::phases::{self, Phase};
use crate::topology::{self, DEAD, DEAD_LETTERS, EVENTS, QUEUES};
use crate::{Ctx, Error, Result};

/// A service's handle on the broker; cheap to clone.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    settings: Broker,
    link: watch::Sender<Option<Link>>,
    relay: Notify,
}

/// One live connection and the channel every publish of the service goes through.
#[derive(Clone)]
struct Link {
    connection: Arc<Connection>,
    publisher: Channel,
    /// Cancelled when this connection is found broken (or on shutdown).
    alive: CancellationToken,
}

/// What an event needs besides its body to be published.
pub struct Envelope<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub correlation_id: &'a str,
    pub accepted_at: DateTime<Utc>,
}

impl Bus {
    pub fn new(service: &'static str, settings: &Broker) -> Bus {
        Bus {
            inner: Arc::new(Inner {
                service,
                settings: settings.clone(),
                link: watch::channel(None).0,
                relay: Notify::new(),
            }),
        }
    }

    /// Declares the connection supervisor (and with it the consumers) and
    /// the outbox relay as the service's background work.
    pub fn start(ctx: &Ctx, consumers: &'static [Consumer], background: &mut crate::Background) {
        background.spawn("broker supervisor", supervise(ctx.clone(), consumers));
        background.spawn("outbox relay", relay::run(ctx.clone()));
    }

    pub fn connected(&self) -> bool {
        self.inner
            .link
            .borrow()
            .as_ref()
            .is_some_and(|l| l.connection.status().connected() && !l.alive.is_cancelled())
    }

    /// Tells the relay that an outbox row was committed.
    pub fn wake_relay(&self) {
        self.inner.relay.notify_one();
    }

    pub fn settings(&self) -> &Broker {
        &self.inner.settings
    }

    fn name(&self, name: &str) -> String {
        topology::named(&self.inner.settings.prefix, name)
    }

    fn link(&self) -> Result<Link> {
        self.inner
            .link
            .borrow()
            .clone()
            .filter(|l| !l.alive.is_cancelled())
            .ok_or_else(|| Error::Unavailable(BROKER_UNAVAILABLE.into()))
    }

    /// Publishes an event and waits for the broker's confirm: once this
    /// returns Ok, the event is on disk in every queue bound to its kind.
    pub async fn publish(&self, envelope: &Envelope<'_>, body: &[u8]) -> Result<()> {
        let confirm = self
            .send(EVENTS, envelope.kind, envelope, body, None)
            .await?;
        confirm.await
    }

    /// [`Bus::publish`] for a message whose sender waits for the answer (a
    /// click): if the connection breaks after the message was sent but before
    /// its confirm came, the outcome is unknown, so the same message (same
    /// id: consumers keep one) is published again once the connection is
    /// back, for up to `patience`; past that it fails saying the message may
    /// have arrived. Fails at once if it was never sent.
    pub async fn publish_durably(
        &self,
        envelope: &Envelope<'_>,
        body: &[u8],
        patience: Duration,
    ) -> Result<()> {
        let deadline = tokio::time::Instant::now() + patience;
        // Whether an attempt was sent and its confirm lost with the connection.
        let mut unknown = false;
        loop {
            if !unknown {
                self.link()?;
            }
            let failed = match self.publish(envelope, body).await {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            // A refusal is the broker's answer: that attempt is not stored.
            unknown |= !matches!(&failed, Error::Unavailable(m) if m.starts_with(REFUSED));
            if tokio::time::Instant::now() >= deadline {
                return Err(match failed {
                    Error::Unavailable(_) if unknown => Error::Unavailable(format!(
                        "{BROKER_UNAVAILABLE}; the message may have reached it before the \
                         connection broke (its confirm was lost)"
                    )),
                    other => other,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends without waiting for the confirm; the returned future waits for it.
    /// Lets the relay put a whole batch on the wire before the first confirm.
    async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        envelope: &Envelope<'_>,
        body: &[u8],
        extra: Option<FieldTable>,
    ) -> Result<impl Future<Output = Result<()>> + use<>> {
        let link = self.link()?;
        let properties = properties(envelope, extra);
        let start = std::time::Instant::now();
        let pending = link
            .publisher
            .basic_publish(
                self.name(exchange).into(),
                routing_key.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties,
            )
            .await
            .map_err(|e| broker_error("publish", e))?;
        phases::record(Phase::Publish, start.elapsed());
        let (kind, service) = (envelope.kind.to_owned(), self.inner.service);
        Ok(async move {
            let start = std::time::Instant::now();
            let confirm = pending.await.map_err(|e| broker_error("publish", e))?;
            phases::record(Phase::Confirm, start.elapsed());
            if !confirm.is_ack() {
                return Err(Error::Unavailable(format!("{REFUSED} {kind}")));
            }
            if let Some(returned) = confirm.take_message() {
                return Err(
                    anyhow::anyhow!("{kind} could not be routed: {}", returned.reply_text).into(),
                );
            }
            metrics::counter!("messages_published_total", "service" => service, "mode" => "async", "kind" => kind)
                .increment(1);
            Ok(())
        })
    }
}

/// How a negative confirm's error begins: the broker did not take the message.
const REFUSED: &str = "the broker refused";

fn broker_error(what: &str, e: lapin::Error) -> Error {
    tracing::debug!(error = %e, "broker {what} failed");
    Error::Unavailable(format!("{BROKER_UNAVAILABLE} ({what})"))
}

fn properties(envelope: &Envelope<'_>, extra: Option<FieldTable>) -> BasicProperties {
    let mut headers = extra.unwrap_or_default();
    headers.insert(
        "accepted_at".into(),
        AMQPValue::LongLongInt(envelope.accepted_at.timestamp_micros()),
    );
    headers.insert(
        "published_at".into(),
        AMQPValue::LongLongInt(Utc::now().timestamp_micros()),
    );
    BasicProperties::default()
        .with_message_id(envelope.id.to_string().into())
        .with_type(envelope.kind.into())
        .with_correlation_id(envelope.correlation_id.into())
        .with_timestamp(u64::try_from(Utc::now().timestamp()).unwrap_or_default())
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers)
}

/// Keeps one connection alive for the life of the service: connect, declare,
/// consume, and when the connection breaks, start over after `BROKER_RECONNECT_MS`.
async fn supervise(ctx: Ctx, consumers: &'static [Consumer]) {
    let bus = ctx.bus.clone();
    let service = ctx.name();
    let mut failures = 0u32;
    while !ctx.shutdown.is_cancelled() {
        match connect(&bus).await {
            Ok(link) => {
                failures = 0;
                tracing::info!(service, "connected to the message broker");
                let tracker = TaskTracker::new();
                for consumer in consumers {
                    tracker.spawn(consume::run(ctx.clone(), link.clone(), consumer));
                }
                bus.inner.link.send_replace(Some(link.clone()));
                metrics::gauge!("broker_connected", "service" => service, "mode" => "async")
                    .set(1.0);
                bus.wake_relay();
                watch_link(&ctx, &link).await;
                link.alive.cancel();
                bus.inner.link.send_replace(None);
                metrics::gauge!("broker_connected", "service" => service, "mode" => "async")
                    .set(0.0);
                tracker.close();
                // Handlers in flight finish (their acks fail if the connection
                // is gone, and the broker redelivers: nothing is lost).
                let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
                if ctx.shutdown.is_cancelled() {
                    let _ = link.connection.close(200, "service stopping".into()).await;
                    break;
                }
                tracing::warn!(service, "lost the message broker connection; reconnecting");
            }
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(20) {
                    tracing::warn!(service, error = %e, attempts = failures, "cannot reach the message broker; retrying");
                }
            }
        }
        tokio::select! {
            () = ctx.shutdown.cancelled() => break,
            () = tokio::time::sleep(bus.inner.settings.reconnect) => {}
        }
    }
}

/// Returns when the connection broke, a consumer lost its channel, or the service stops.
async fn watch_link(ctx: &Ctx, link: &Link) {
    loop {
        tokio::select! {
            () = ctx.shutdown.cancelled() => return,
            () = link.alive.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                if !link.connection.status().connected() || !link.publisher.status().connected() {
                    return;
                }
            }
        }
    }
}

async fn connect(bus: &Bus) -> anyhow::Result<Link> {
    let settings = &bus.inner.settings;
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("{}-{}", settings.prefix, bus.inner.service).into());
    let mut uri: lapin::uri::AMQPUri = settings.url.parse().map_err(anyhow::Error::msg)?;
    uri.query.frame_max.get_or_insert(topology::FRAME_MAX);
    let connection = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect_uri(uri, properties),
    )
    .await??;
    let channel = connection.create_channel().await?;
    declare(&channel, &settings.prefix).await?;
    let _ = channel.close(200, "declared".into()).await;
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(Link {
        connection: Arc::new(connection),
        publisher,
        alive: CancellationToken::new(),
    })
}

/// Declares the whole topology; every declaration is idempotent.
async fn declare(channel: &Channel, prefix: &str) -> anyhow::Result<()> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let (events, dead) = (
        topology::named(prefix, EVENTS),
        topology::named(prefix, DEAD),
    );
    channel
        .exchange_declare(
            events.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            dead.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let queue = |name: String, args: FieldTable| {
        channel.queue_declare(
            name.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
    };
    let dead_letters = topology::named(prefix, DEAD_LETTERS);
    queue(dead_letters.clone(), FieldTable::default()).await?;
    channel
        .queue_bind(
            dead_letters.into(),
            dead.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for q in QUEUES {
        let name = topology::named(prefix, q.name);
        // A message the broker itself rejects still lands in the dead letters.
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(dead.as_str().into()),
        );
        queue(name.clone(), args).await?;
        for kind in q.binds {
            channel
                .queue_bind(
                    name.as_str().into(),
                    events.as_str().into(),
                    (*kind).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
    }
    Ok(())
}
