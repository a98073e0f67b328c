//! A stack's RabbitMQ queues as an observer sees them: how many messages
//! wait in each (the showdown's queue gauges, the comparison report's backlog)
//! and, for a throwaway stack, deleting them.

use std::time::Duration;

use common::topology::{DEAD, DEAD_LETTERS, EVENTS, QUEUES, named};
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use serde::Serialize;

/// One queue, as the broker answers a passive declare: the messages
/// waiting in it (ready; not those a consumer holds unacknowledged) and its consumers.
#[derive(Debug, Clone, Serialize)]
pub struct QueueDepth {
    pub name: String,
    pub ready: u32,
    pub consumers: u32,
}

/// The async lane's queues, read over AMQP. A passive declare answers with
/// the queue's count at that instant; RabbitMQ's management API would lag
/// by its statistics interval (5 s by default), too late to watch a burst.
pub struct Broker {
    url: String,
    prefix: String,
    connection: tokio::sync::Mutex<Option<lapin::Connection>>,
}

impl Broker {
    pub fn new(url: &str, prefix: &str) -> Broker {
        Broker {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection, opened (again) if need be; `None` when the broker
    /// cannot be reached.
    async fn connected(&self) -> Option<tokio::sync::MutexGuard<'_, Option<lapin::Connection>>> {
        let mut connection = self.connection.lock().await;
        if !connection.as_ref().is_some_and(|c| c.status().connected()) {
            let properties = lapin::ConnectionProperties::default()
                .with_connection_name(format!("{}-observer", self.prefix).into());
            let mut uri: lapin::uri::AMQPUri = self.url.parse().ok()?;
            uri.query
                .frame_max
                .get_or_insert(common::topology::FRAME_MAX);
            let connected = tokio::time::timeout(
                Duration::from_secs(2),
                lapin::Connection::connect_uri(uri, properties),
            )
            .await
            .ok()?
            .ok()?;
            *connection = Some(connected);
        }
        Some(connection)
    }

    /// The named queues (without prefix) and the dead letters' depth; `None`
    /// when the broker cannot be reached.
    pub async fn depths(&self, queues: &[&str]) -> Option<(Vec<QueueDepth>, u32)> {
        let connection = self.connected().await?;
        let connection = connection.as_ref()?;
        let mut depths = Vec::new();
        let mut dead = 0;
        let names = queues.iter().copied().chain([DEAD_LETTERS]);
        for name in names {
            // A passive declare of a queue that does not exist closes its
            // channel: one channel per queue.
            let channel = connection.create_channel().await.ok()?;
            let declared = channel
                .queue_declare(
                    named(&self.prefix, name).into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    lapin::types::FieldTable::default(),
                )
                .await;
            let (ready, consumers) = declared
                .map(|q| (q.message_count(), q.consumer_count()))
                .unwrap_or((0, 0));
            let _ = channel.close(200, "read".into()).await;
            if name == DEAD_LETTERS {
                dead = ready;
            } else {
                depths.push(QueueDepth {
                    name: name.to_owned(),
                    ready,
                    consumers,
                });
            }
        }
        Some((depths, dead))
    }

    /// Deletes the prefix's queues and exchanges (a throwaway stack's).
    pub async fn delete_all(&self) -> Option<()> {
        let connection = self.connected().await?;
        let connection = connection.as_ref()?;
        let queues = QUEUES.iter().map(|q| q.name).chain([DEAD_LETTERS]);
        for queue in queues {
            // A failed delete closes its channel: one channel each.
            let channel = connection.create_channel().await.ok()?;
            let _ = channel
                .queue_delete(
                    named(&self.prefix, queue).into(),
                    QueueDeleteOptions::default(),
                )
                .await;
            let _ = channel.close(200, "deleted".into()).await;
        }
        for exchange in [EVENTS, DEAD] {
            let channel = connection.create_channel().await.ok()?;
            let _ = channel
                .exchange_delete(
                    named(&self.prefix, exchange).into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
            let _ = channel.close(200, "deleted".into()).await;
        }
        Some(())
    }
}
