//! The async mode's RabbitMQ topology, as data: every service declares all of
//! it (idempotently) each time it connects, so no event is ever published
//! before the queue that must hold it exists. The README's table and diagram
//! are this file in prose.
//!
//! Names are prefixed with `BROKER_PREFIX` (default `lab`): `lab.events`,
//! `lab.email.send`, ... so that tests and several stacks share one broker.

/// The largest AMQP frame a connection of the lab asks for, unless
/// `AMQP_URL` says (`?frame_max=`): lapin keeps two buffers of 32 frames per
/// connection, zeroed in full, so RabbitMQ's default of 128 KiB cost every
/// connection 8 MiB of resident memory; at 16 KiB they hold 1 MiB, and a
/// message larger than a frame (a big click batch) is simply sent in several.
pub const FRAME_MAX: u32 = 16 * 1024;

/// Topic exchange every event is published to, with its kind as routing key.
pub const EVENTS: &str = "events";
/// Fanout exchange of messages that failed every attempt (or could not be read).
pub const DEAD: &str = "dead";
/// The one queue bound to [`DEAD`].
pub const DEAD_LETTERS: &str = "dead-letters";

/// An event kind: its routing key, who publishes it and what it carries.
pub struct Event {
    pub kind: &'static str,
    pub publisher: &'static str,
    pub payload: &'static str,
}

/// One queue per consuming purpose.
pub struct Queue {
    pub name: &'static str,
    pub consumer: &'static str,
    pub binds: &'static [&'static str],
}

pub const EVENT_KINDS: &[Event] = &[
    Event {
        kind: "user.registered",
        publisher: "user",
        payload: "SendEmail",
    },
    Event {
        kind: "email.sent",
        publisher: "email",
        payload: "EmailSent",
    },
    Event {
        kind: "payment.requested",
        publisher: "payment, order",
        payload: "PaymentRequest",
    },
    Event {
        kind: "payment.settled",
        publisher: "payment",
        payload: "PaymentResult",
    },
    Event {
        kind: "product.changed",
        publisher: "product",
        payload: "ProductChanged",
    },
    Event {
        kind: "report.requested",
        publisher: "report",
        payload: "Job (id)",
    },
    Event {
        kind: "stock.reserve",
        publisher: "order",
        payload: "Reserve",
    },
    Event {
        kind: "stock.release",
        publisher: "order",
        payload: "OrderRef",
    },
    Event {
        kind: "stock.commit",
        publisher: "order",
        payload: "OrderRef",
    },
    Event {
        kind: "stock.reserved",
        publisher: "inventory",
        payload: "Reservation",
    },
    Event {
        kind: "stock.refused",
        publisher: "inventory",
        payload: "StockRefused",
    },
    Event {
        kind: "stock.released",
        publisher: "inventory",
        payload: "Reservation",
    },
    Event {
        kind: "stock.committed",
        publisher: "inventory",
        payload: "Reservation",
    },
    Event {
        kind: "clicks.tracked",
        publisher: "analytics",
        payload: "ClickBatch",
    },
];

pub const QUEUES: &[Queue] = &[
    Queue {
        name: "email.send",
        consumer: "email",
        binds: &["user.registered"],
    },
    Queue {
        name: "user.email-sent",
        consumer: "user",
        binds: &["email.sent"],
    },
    Queue {
        name: "payment.requests",
        consumer: "payment",
        binds: &["payment.requested"],
    },
    Queue {
        name: "search.product-changed",
        consumer: "search",
        binds: &["product.changed"],
    },
    Queue {
        name: "cache.product-changed",
        consumer: "cache",
        binds: &["product.changed"],
    },
    Queue {
        name: "analytics.product-changed",
        consumer: "analytics",
        binds: &["product.changed"],
    },
    Queue {
        name: "report.jobs",
        consumer: "report",
        binds: &["report.requested"],
    },
    Queue {
        name: "inventory.reservations",
        consumer: "inventory",
        binds: &["stock.reserve", "stock.release", "stock.commit"],
    },
    Queue {
        name: "order.saga",
        consumer: "order",
        binds: &[
            "stock.reserved",
            "stock.refused",
            "stock.released",
            "stock.committed",
            "payment.settled",
        ],
    },
    Queue {
        name: "analytics.clicks",
        consumer: "analytics",
        binds: &["clicks.tracked"],
    },
];

/// `name` with the stack's prefix: `lab.email.send`.
pub fn named(prefix: &str, name: &str) -> String {
    format!("{prefix}.{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_reaches_a_queue_and_every_binding_is_an_event() {
        for event in EVENT_KINDS {
            assert!(
                QUEUES.iter().any(|q| q.binds.contains(&event.kind)),
                "{} would be published to no queue",
                event.kind
            );
        }
        for queue in QUEUES {
            for bind in queue.binds {
                assert!(EVENT_KINDS.iter().any(|e| e.kind == *bind), "{bind}");
            }
            assert!(crate::services::find(queue.consumer).is_some());
        }
    }
}
