//! Events as the services see them, whatever carries them: writing one to the
//! outbox in the statement or transaction of the state change that causes it, and reading
//! one that a consumer received, with the inbox that makes its effect happen
//! once. The broker side (publishing, consuming, retries) is in `bus`.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::PgArguments;
use sqlx::query::QueryAs;
use sqlx::{PgConnection, PgPool, Postgres};
use uuid::Uuid;

use crate::{Ctx, Result, correlation};

/// An event read from a queue.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub id: Uuid,
    pub kind: String,
    pub correlation_id: String,
    /// When the operation this event belongs to was accepted (the user
    /// registered, the order placed): the start of its completion time.
    pub accepted_at: DateTime<Utc>,
    /// When the relay published it: the start of its queue wait.
    pub published_at: Option<DateTime<Utc>>,
    pub body: Vec<u8>,
    pub queue: &'static str,
}

impl Incoming {
    pub fn payload<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            anyhow::anyhow!("{} message {} has a bad payload: {e}", self.kind, self.id).into()
        })
    }

    /// Records, inside the transaction of the effect, that this message was
    /// handled. False when it already was: the caller must then do nothing.
    pub async fn claim(&self, conn: &mut PgConnection) -> Result<bool> {
        let sql = claiming("SELECT EXISTS (SELECT 1 FROM claim)");
        let (claimed,): (bool,) = self
            .bind_claim(sqlx::query_as(&sql))
            .fetch_one(conn)
            .await?;
        Ok(claimed)
    }

    /// Binds this message's id and queue as `$1` and `$2` of a statement
    /// built by [`claiming`].
    pub fn bind_claim<'q, O>(
        &'q self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments> {
        query.bind(self.id).bind(self.queue)
    }

    /// Whether this message's effect is already committed: lets a consumer
    /// skip a slow step (a 2 s payment call) for a redelivered message.
    pub async fn seen(&self, db: &PgPool) -> Result<bool> {
        let seen: Option<i32> = sqlx::query_scalar("SELECT 1 FROM inbox WHERE message_id = $1")
            .bind(self.id)
            .fetch_optional(db)
            .await?;
        Ok(seen.is_some())
    }

    /// Seconds from acceptance of the operation to now.
    pub fn since_accepted(&self) -> f64 {
        seconds_since(self.accepted_at)
    }
}

pub fn seconds_since(at: DateTime<Utc>) -> f64 {
    (Utc::now() - at).as_seconds_f64().max(0.0)
}

/// A statement that begins with a message's inbox claim, so that the claim
/// costs no round trip of its own: `WITH claim AS (…)`, with the message's
/// id and queue as `$1` and `$2` ([`Incoming::bind_claim`]), then `rest`,
/// whose own parameters start at `$3`. `EXISTS (SELECT 1 FROM claim)` in
/// `rest` is whether this message is new; when it is not, nothing `rest`
/// does may count (the caller rolls back).
pub fn claiming(rest: &str) -> String {
    format!(
        "WITH claim AS (
             INSERT INTO inbox (message_id, queue) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1
         ) {rest}"
    )
}

/// Writes an event to the outbox inside `conn`'s transaction; the relay
/// publishes it once that transaction has committed. `accepted_at` is when
/// the operation the event belongs to was accepted.
pub async fn enqueue(
    conn: &mut PgConnection,
    kind: &str,
    payload: &impl Serialize,
    accepted_at: DateTime<Utc>,
) -> Result<Uuid> {
    let sql = format!("{} RETURNING message_id", outbox_insert(1));
    let (id,): (Uuid,) = bind_outgoing(sqlx::query_as(&sql), kind, payload, accepted_at)
        .fetch_one(conn)
        .await?;
    Ok(id)
}

/// The outbox's columns an event is written with, in every statement that writes one.
const OUTBOX_INSERT: &str =
    "INSERT INTO outbox (message_id, kind, payload, correlation_id, accepted_at)";

/// The outbox INSERT of one event, with its values as parameters from
/// `$first` on: a statement of its own ([`enqueue`]) or a part of a larger
/// one, to bind with [`bind_outgoing`].
pub fn outbox_insert(first: usize) -> String {
    let [id, kind, payload, correlation, accepted] = std::array::from_fn(|i| first + i);
    format!("{OUTBOX_INSERT} VALUES (${id}, ${kind}, ${payload}, ${correlation}, ${accepted})")
}

/// An event about the row that the same statement's CTE `new` writes, so
/// that the row and its event are one statement (one round trip, atomic
/// without a transaction): its kind, its payload as an SQL expression over
/// `new`, and the column of `new` that says when it was accepted. A seam
/// names its mode's event as an `Option<About>`: `None` in sync mode, whose
/// schema has no outbox.
pub struct About {
    pub kind: &'static str,
    pub payload: &'static str,
    pub accepted_at: &'static str,
}

/// The CTE `, sent AS (INSERT INTO outbox …)` that writes `about` (to put
/// after `new`), or nothing when there is no event. Its message id, kind and
/// correlation id are `$first` to `$first + 2`, bound by [`bind_sent`].
pub fn sent(about: Option<&About>, first: usize) -> String {
    about.map_or_else(String::new, |a| {
        sent_from_new(first, a.payload, a.accepted_at)
    })
}

/// Binds a [`sent`]'s parameters for `about`; nothing when there is none.
pub fn bind_sent<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    about: Option<&About>,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    match about {
        Some(a) => bind_message(query, a.kind),
        None => query,
    }
}

fn sent_from_new(first: usize, payload: &str, accepted_at: &str) -> String {
    let [id, kind, correlation] = std::array::from_fn(|i| first + i);
    format!(
        ", sent AS (
             {OUTBOX_INSERT}
             SELECT ${id}, ${kind}, {payload}, ${correlation}, new.{accepted_at} FROM new
         )"
    )
}

fn bind_message<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    kind: &'q str,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(Uuid::new_v4())
        .bind(kind)
        .bind(correlation::current().unwrap_or_default())
}

/// That an event's payload has the `id_field` a statement sets to the new
/// row's id: `jsonb_set` would add a missing one, and the event would carry
/// a field its type does not have.
fn about_new_row(kind: &str, payload: &serde_json::Value, id_field: &str) -> Result<()> {
    match payload.get(id_field) {
        Some(_) => Ok(()),
        None => {
            Err(anyhow::anyhow!("{kind} carries no {id_field} to give the new row's id").into())
        }
    }
}

/// One event of a statement that inserts rows, each with its own
/// ([`EventColumns`]): its message id, kind, payload but for its
/// `id_field` (the new row's id, set by the statement) and the correlation
/// id of the request that asked for it.
pub struct Outgoing {
    pub message_id: Uuid,
    pub kind: &'static str,
    pub payload: serde_json::Value,
    pub correlation_id: String,
}

impl Outgoing {
    /// The event `kind` with `payload` about a row still to be inserted, for
    /// the current request; an error if the payload has no `id_field`.
    pub fn about_new(kind: &'static str, payload: &impl Serialize, id_field: &str) -> Result<Self> {
        let payload = serde_json::to_value(payload).map_err(anyhow::Error::from)?;
        about_new_row(kind, &payload, id_field)?;
        Ok(Outgoing {
            message_id: Uuid::new_v4(),
            kind,
            payload,
            correlation_id: correlation::current().unwrap_or_default(),
        })
    }
}

/// The [`Outgoing`] events of a batch of new rows as four columns of the
/// statement's `unnest` (`message_id, kind, payload, correlation_id`), one
/// row each. A batch's rows all carry an event (async mode) or none does
/// (sync mode, whose schema has no outbox).
pub struct EventColumns<'a> {
    message_ids: Vec<Uuid>,
    kinds: Vec<&'a str>,
    payloads: Vec<sqlx::types::Json<&'a serde_json::Value>>,
    correlation_ids: Vec<&'a str>,
}

impl<'a> EventColumns<'a> {
    /// The columns of `events`, one per row; `None` when no row carries an
    /// event, an error when some do and some do not.
    pub fn of(events: impl IntoIterator<Item = Option<&'a Outgoing>>) -> Result<Option<Self>> {
        let mut columns = EventColumns {
            message_ids: Vec::new(),
            kinds: Vec::new(),
            payloads: Vec::new(),
            correlation_ids: Vec::new(),
        };
        let (mut with, mut without) = (0, 0);
        for event in events {
            let Some(e) = event else {
                without += 1;
                continue;
            };
            with += 1;
            columns.message_ids.push(e.message_id);
            columns.kinds.push(e.kind);
            columns.payloads.push(sqlx::types::Json(&e.payload));
            columns.correlation_ids.push(e.correlation_id.as_str());
        }
        match (with, without) {
            (0, _) => Ok(None),
            (_, 0) => Ok(Some(columns)),
            _ => Err(anyhow::anyhow!("a batch of rows with and without their event").into()),
        }
    }

    /// What a batch statement writes for `events` ([`EventColumns::of`]),
    /// their parameters from `$first` on: the `unnest` arguments and names
    /// of the columns, to follow the statement's own (`input`'s), and the
    /// CTE that writes one event per new row (`sent_about_each_new`'s
    /// `id_field` and `using`). All empty when there are no events.
    pub fn sql(events: &Option<Self>, first: usize, id_field: &str, using: &str) -> EventSql {
        if events.is_none() {
            return EventSql::default();
        }
        let [id, kind, payload, correlation] = std::array::from_fn(|i| first + i);
        EventSql {
            unnest: format!(
                ", ${id}::uuid[], ${kind}::text[], ${payload}::jsonb[], ${correlation}::text[]"
            ),
            names: ", message_id, kind, payload, correlation_id".into(),
            sent: sent_about_each_new(id_field, using),
        }
    }

    /// Binds the columns: the next four parameters.
    pub fn bind<'q, O>(
        self,
        query: QueryAs<'q, Postgres, O, PgArguments>,
    ) -> QueryAs<'q, Postgres, O, PgArguments>
    where
        'a: 'q,
    {
        query
            .bind(self.message_ids)
            .bind(self.kinds)
            .bind(self.payloads)
            .bind(self.correlation_ids)
    }
}

/// The SQL of a batch's events ([`EventColumns::sql`]), each piece
/// starting with a comma.
#[derive(Default)]
pub struct EventSql {
    pub unnest: String,
    pub names: String,
    pub sent: String,
}

/// The CTE `, sent AS (INSERT INTO outbox …)` of a statement whose CTE `new`
/// inserts rows from the CTE `input`: one event per row of `new`, from the
/// [`EventColumns`] of the row of `input` it joins on `using` (a column both
/// have, unique in `input`), its `id_field` set to the new row's id,
/// accepted at `new.created_at`.
fn sent_about_each_new(id_field: &str, using: &str) -> String {
    format!(
        ", sent AS (
             {OUTBOX_INSERT}
             SELECT input.message_id, input.kind,
                    jsonb_set(input.payload, '{{{id_field}}}', to_jsonb(new.id)),
                    input.correlation_id, new.created_at
             FROM new JOIN input USING ({using})
         )"
    )
}

/// Binds the next five parameters to the values of an [`outbox_insert`]:
/// a new message id, the event and the request's correlation id.
pub fn bind_outgoing<'q, O>(
    query: QueryAs<'q, Postgres, O, PgArguments>,
    kind: &'q str,
    payload: &'q impl Serialize,
    accepted_at: DateTime<Utc>,
) -> QueryAs<'q, Postgres, O, PgArguments> {
    query
        .bind(Uuid::new_v4())
        .bind(kind)
        .bind(sqlx::types::Json(payload))
        .bind(correlation::current().unwrap_or_default())
        .bind(accepted_at)
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How a consumer handles what it receives.
pub enum Handle {
    /// One message at a time (several at once, up to `CONSUMER_PREFETCH`).
    One(fn(Ctx, Incoming) -> BoxFuture<Result<()>>),
    /// Batches of up to the consumer's prefetch of messages, or what arrives in `CLICK_BATCH_MS`.
    Batch(fn(Ctx, Vec<Incoming>) -> BoxFuture<Result<()>>),
}

/// A service's consumer of one queue of [`crate::topology::QUEUES`].
pub struct Consumer {
    pub queue: &'static str,
    /// Messages it may hold unacknowledged (and so handle at once).
    pub prefetch: fn(&crate::Settings) -> u16,
    pub handle: Handle,
}

/// The usual prefetch: `CONSUMER_PREFETCH`.
pub fn prefetch(settings: &crate::Settings) -> u16 {
    settings.broker.prefetch
}

/// The prefetch of a consumer whose every message is one short transaction
/// and nothing else (the saga's steps, inventory's reservations): at most
/// half the service's pool (`DB_MAX_CONNECTIONS`), so that while it is busy
/// the requests still find a connection and the queue, not the pool, holds
/// what waits.
pub fn db_bound_prefetch(settings: &crate::Settings) -> u16 {
    let half = u16::try_from(settings.half_the_pool()).unwrap_or(u16::MAX);
    settings.broker.prefetch.min(half)
}

/// Records that an async operation of `scenario` is finished: the time from
/// its acceptance to now goes to `async_completion_seconds`.
pub fn completed(ctx: &Ctx, scenario: &'static str, accepted_at: DateTime<Utc>) {
    metrics::histogram!("async_completion_seconds", "service" => ctx.name(), "mode" => crate::MODE.as_str(), "scenario" => scenario)
        .record(seconds_since(accepted_at));
}

/// A future that borrows a transaction's connection.
pub type InTx<'c, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'c>>;

/// Runs `effect` for `msg` exactly once: the inbox claim, the effect (and any
/// events it enqueues) commit together. The caller wakes the relay if the
/// effect enqueued an event (a pass that finds nothing costs three round
/// trips). `None` when the message was already
/// handled. `delay` is the simulated external work that precedes the effect;
/// it runs before the transaction opens, so no connection waits on it.
pub async fn once<T>(
    ctx: &Ctx,
    msg: &Incoming,
    delay: std::time::Duration,
    effect: impl for<'c> FnOnce(&'c mut PgConnection) -> InTx<'c, T>,
) -> Result<Option<T>> {
    if !delay.is_zero() {
        if msg.seen(&ctx.db).await? {
            return Ok(None);
        }
        ctx.simulate_latency(delay).await?;
    }
    let mut tx = ctx.begin().await?;
    if !msg.claim(&mut tx).await? {
        return Ok(None);
    }
    let value = effect(&mut tx).await?;
    tx.commit().await?;
    Ok(Some(value))
}

/// [`Incoming::claim`] for a batch in one statement: the messages not handled before.
pub async fn claim_all<'m>(
    conn: &mut PgConnection,
    batch: &'m [Incoming],
) -> Result<Vec<&'m Incoming>> {
    let ids: Vec<Uuid> = batch.iter().map(|m| m.id).collect();
    let queue = batch.first().map_or("", |m| m.queue);
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO inbox (message_id, queue) SELECT unnest($1::uuid[]), $2
         ON CONFLICT DO NOTHING RETURNING message_id",
    )
    .bind(&ids)
    .bind(queue)
    .fetch_all(conn)
    .await?;
    // A message delivered twice can sit twice in one batch: keep it once.
    let mut fresh: std::collections::HashSet<Uuid> = fresh.into_iter().collect();
    Ok(batch.iter().filter(|m| fresh.remove(&m.id)).collect())
}

#[cfg(test)]
mod tests {
    use crate::Settings;

    #[test]
    fn a_database_bound_consumer_leaves_half_the_pool_to_requests() {
        let defaults = Settings::for_test(&[]);
        assert_eq!(super::prefetch(&defaults), 10);
        assert_eq!(super::db_bound_prefetch(&defaults), 4, "8 connections");
        let big_pool = Settings::for_test(&[("DB_MAX_CONNECTIONS", "40")]);
        assert_eq!(
            super::db_bound_prefetch(&big_pool),
            10,
            "never above CONSUMER_PREFETCH"
        );
        let one = Settings::for_test(&[("DB_MAX_CONNECTIONS", "1")]);
        assert_eq!(super::db_bound_prefetch(&one), 1, "never 0");
    }
}
