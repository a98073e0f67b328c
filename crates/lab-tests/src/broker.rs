//! The broker side of a test stack (async mode): a per-test name prefix on
//! the real RabbitMQ, a TCP proxy in front of it that a test can cut (what a
//! dropped connection or a broker outage looks like to the services), and
//! direct access for what no service does (a poison or duplicate message,
//! counting the dead letters, deleting the test's queues).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::topology::{self, DEAD, DEAD_LETTERS, EVENTS, QUEUES};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The real broker (`TEST_AMQP_ADDR`, default 127.0.0.1:5672).
pub fn broker_addr() -> String {
    std::env::var("TEST_AMQP_ADDR").unwrap_or_else(|_| "127.0.0.1:5672".into())
}

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

/// A TCP proxy to the broker that can refuse and cut connections.
pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped to cut every open connection.
    cut: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0);
        let proxy = Proxy {
            port,
            up: up.clone(),
            cut: cut.clone(),
        };
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection close
                }
                let mut cut = cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(broker_addr()).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        amqp_url(&format!("127.0.0.1:{}", self.port))
    }

    /// The broker becomes unreachable: open connections are cut, new ones refused.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Cuts open connections; new ones are accepted (a dropped connection).
    pub fn drop_connections(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A direct connection to the real broker under the test's prefix.
pub struct Broker {
    pub prefix: String,
}

impl Broker {
    async fn connect() -> Connection {
        Connection::connect(&amqp_url(&broker_addr()), ConnectionProperties::default())
            .await
            .expect("RabbitMQ is running (see README: scripts/ensure-services.sh)")
    }

    /// Publishes a message as a service would, with the given id and body.
    pub async fn publish(&self, kind: &str, message_id: &str, body: &[u8]) {
        let connection = Self::connect().await;
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        let mut headers = FieldTable::default();
        headers.insert(
            "accepted_at".into(),
            AMQPValue::LongLongInt(chrono::Utc::now().timestamp_micros()),
        );
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_type(kind.into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                topology::named(&self.prefix, EVENTS).into(),
                kind.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        assert!(confirm.is_ack());
        let _ = connection.close(200, "done".into()).await;
    }

    /// Messages waiting in one of the test's queues (`dead-letters`, `email.send`, ...).
    pub async fn depth(&self, queue: &str) -> u32 {
        let connection = Self::connect().await;
        let channel = connection.create_channel().await.expect("channel");
        let declared = channel
            .queue_declare(
                topology::named(&self.prefix, queue).into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue exists");
        let _ = connection.close(200, "done".into()).await;
        declared.message_count()
    }

    /// A queue of the test's own, bound to the events exchange for `kinds`:
    /// it receives a copy of every such event the services publish.
    pub async fn tap(&self, kinds: &[&str]) -> Tap {
        let connection = Self::connect().await;
        let channel = connection.create_channel().await.expect("channel");
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        let queue = channel
            .queue_declare("".into(), exclusive, FieldTable::default())
            .await
            .expect("tap queue")
            .name()
            .to_string();
        for kind in kinds {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    topology::named(&self.prefix, EVENTS).into(),
                    (*kind).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .expect("bind the tap");
        }
        Tap {
            _connection: connection,
            channel,
            queue,
        }
    }

    /// Takes the messages of one of the test's queues (`dead-letters`, ...)
    /// as a [`Tap`] does.
    pub async fn reader(&self, queue: &str) -> Tap {
        let connection = Self::connect().await;
        let channel = connection.create_channel().await.expect("channel");
        Tap {
            _connection: connection,
            channel,
            queue: topology::named(&self.prefix, queue),
        }
    }

    /// How RabbitMQ's management API (`TEST_RABBITMQ_API`, by default
    /// `http://127.0.0.1:15672`) describes one of the test's queues or
    /// exchanges (`what`: `queues` or `exchanges`), as a user would see it;
    /// `None` if the broker has no such thing.
    pub async fn described(&self, what: &str, name: &str) -> Option<serde_json::Value> {
        let api =
            std::env::var("TEST_RABBITMQ_API").unwrap_or_else(|_| "http://127.0.0.1:15672".into());
        let url = format!(
            "{api}/api/{what}/%2f/{}",
            topology::named(&self.prefix, name)
        );
        let response = reqwest::Client::new()
            .get(&url)
            .basic_auth("guest", Some("guest"))
            .send()
            .await
            .expect("RabbitMQ's management API (scripts/ensure-services.sh enables it)");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert_eq!(response.status(), 200, "{url}");
        Some(response.json().await.expect("JSON"))
    }

    /// Deletes every queue and exchange of the test.
    pub async fn delete_all(&self) {
        let connection = Self::connect().await;
        let channel = connection.create_channel().await.expect("channel");
        let queues = QUEUES.iter().map(|q| q.name).chain([DEAD_LETTERS]);
        for queue in queues {
            let _ = channel
                .queue_delete(
                    topology::named(&self.prefix, queue).into(),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        for exchange in [EVENTS, DEAD] {
            let _ = channel
                .exchange_delete(
                    topology::named(&self.prefix, exchange).into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        let _ = connection.close(200, "done".into()).await;
    }
}

/// See [`Broker::tap`] and [`Broker::reader`]; gone with its connection.
pub struct Tap {
    _connection: Connection,
    channel: Channel,
    queue: String,
}

/// What a tap saw of one event: its AMQP properties.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    pub kind: String,
    pub correlation_id: String,
    pub message_id: String,
    /// 2 is persistent.
    pub delivery_mode: Option<u8>,
    /// Seconds since the epoch.
    pub timestamp: Option<u64>,
    /// Why it was dead-lettered (the `x-reason` header), if it was.
    pub reason: Option<String>,
}

impl Tap {
    /// The next message, waiting up to 10 s.
    pub async fn next(&self) -> Option<Seen> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            let got = self
                .channel
                .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("get from the tap");
            if let Some(message) = got {
                let props = &message.delivery.properties;
                let text = |v: &Option<lapin::types::ShortString>| {
                    v.as_ref().map(|s| s.to_string()).unwrap_or_default()
                };
                return Some(Seen {
                    kind: text(props.kind()),
                    correlation_id: text(props.correlation_id()),
                    message_id: text(props.message_id()),
                    delivery_mode: *props.delivery_mode(),
                    timestamp: *props.timestamp(),
                    reason: props
                        .headers()
                        .as_ref()
                        .and_then(|h| h.inner().get("x-reason"))
                        .and_then(|v| v.as_long_string())
                        .map(|v| v.to_string()),
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        None
    }
}
