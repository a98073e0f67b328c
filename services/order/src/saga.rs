//! The order saga as one state machine, shared by both modes: [`next`] is a
//! pure function from an order and what just happened ([`Event`]) to what
//! changes ([`Transition`]: the steps to record, the new status, the command
//! to send next). The modes differ only in how a command is carried and how
//! its answer comes back as an event: sync mode makes the call and loops
//! ([`crate::orchestration`]), async mode enqueues it and hears the answer as
//! a message ([`crate::choreography`]).
//!
//! ```text
//! created ─Reserve→ reserved ─Pay→ approved ─Commit→ committed: confirmed
//!    │                 │             declined ─Release→ released: failed
//!    └ refused: failed └ failed (sync) ─Release→ released: failed
//! ```

use std::fmt;

use chrono::{DateTime, Utc};
use common::events::{EventColumns, EventSql, Incoming, Outgoing};
use common::messages::{OrderRef, PaymentRequest, RefusalKind, Reserve};
use common::{Ctx, Error, Result};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

/// Where an order's saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Confirmed,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Confirmed => "confirmed",
            Status::Failed => "failed",
        }
    }
}

impl TryFrom<String> for Status {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        match s.as_str() {
            "pending" => Ok(Status::Pending),
            "confirmed" => Ok(Status::Confirmed),
            "failed" => Ok(Status::Failed),
            other => Err(format!("unknown order status {other:?}")),
        }
    }
}

/// Why an order failed, as `failure_reason` says it. Set when the saga
/// decides to fail (a pending order with a reason is being compensated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Refused(RefusalKind),
    PaymentDeclined,
    PaymentUnavailable,
    InventoryUnavailable,
    /// The order service stopped mid-saga (see `followups`).
    Interrupted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Refused(kind) => kind.as_str(),
            Reason::PaymentDeclined => "payment declined",
            Reason::PaymentUnavailable => "payment service unavailable",
            Reason::InventoryUnavailable => "inventory service unavailable",
            Reason::Interrupted => "saga interrupted",
        }
    }

    fn parse(s: &str) -> Option<Reason> {
        use RefusalKind::*;
        [
            Reason::Refused(UnknownProduct),
            Reason::Refused(NotEnoughStock),
            Reason::Refused(OrderClosed),
            Reason::PaymentDeclined,
            Reason::PaymentUnavailable,
            Reason::InventoryUnavailable,
            Reason::Interrupted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// An inventory call a finished saga still owes, retried in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    Release,
    Commit,
}

impl Followup {
    pub fn as_str(self) -> &'static str {
        match self {
            Followup::Release => "release",
            Followup::Commit => "commit",
        }
    }

    /// The step its success records.
    pub fn step(self) -> StepName {
        match self {
            Followup::Release => StepName::StockReleased,
            Followup::Commit => StepName::ReservationCommitted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepName {
    OrderCreated,
    StockReserved,
    Payment,
    ReservationCommitted,
    StockReleased,
    OrderConfirmed,
    OrderFailed,
}

impl StepName {
    pub fn as_str(self) -> &'static str {
        match self {
            StepName::OrderCreated => "order_created",
            StepName::StockReserved => "stock_reserved",
            StepName::Payment => "payment",
            StepName::ReservationCommitted => "reservation_committed",
            StepName::StockReleased => "stock_released",
            StepName::OrderConfirmed => "order_confirmed",
            StepName::OrderFailed => "order_failed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    Ok,
    Failed,
    Refused,
    Approved,
    Declined,
    /// The saga's end.
    Done,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Failed => "failed",
            StepOutcome::Refused => "refused",
            StepOutcome::Approved => "approved",
            StepOutcome::Declined => "declined",
            StepOutcome::Done => "done",
        }
    }
}

/// One step to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStep {
    pub name: StepName,
    pub outcome: StepOutcome,
    pub detail: Option<String>,
}

/// "1 unit", "2 units": how a step's detail counts stock.
fn units(quantity: i32) -> String {
    let noun = if quantity == 1 { "unit" } else { "units" };
    format!("{quantity} {noun}")
}

fn step(name: StepName, outcome: StepOutcome, detail: Option<String>) -> NewStep {
    NewStep {
        name,
        outcome,
        detail,
    }
}

/// What just happened to an order's saga. The `…Failed` events are sync
/// mode's (a call that got no usable answer); async mode's commands wait in
/// their queues instead.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Created,
    Reserved {
        quantity: i32,
    },
    Refused {
        kind: RefusalKind,
        detail: String,
    },
    ReserveFailed {
        error: String,
    },
    Approved {
        payment_id: Uuid,
        transaction_id: Option<String>,
    },
    Declined {
        payment_id: Option<Uuid>,
        detail: String,
    },
    PaymentFailed {
        error: String,
    },
    Committed,
    CommitFailed {
        error: String,
    },
    Released {
        quantity: i32,
    },
    ReleaseFailed {
        error: String,
    },
}

/// What the saga asks of another service next.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Reserve(Reserve),
    Pay(PaymentRequest),
    Commit(OrderRef),
    Release(OrderRef),
}

/// What one event changes: steps to record, the order's new fields, the next command.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub steps: Vec<NewStep>,
    pub status: Status,
    pub reason: Option<Reason>,
    pub payment_id: Option<Uuid>,
    pub followup: Option<Followup>,
    pub command: Option<Command>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Order {
    pub id: i64,
    pub product_id: i64,
    pub quantity: i32,
    #[serde(skip)]
    pub amount_cents: i64,
    pub approve_payment: bool,
    #[sqlx(try_from = "String")]
    pub status: Status,
    /// Why it failed, e.g. `payment declined`.
    pub failure_reason: Option<String>,
    pub payment_id: Option<Uuid>,
    pub followup: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub const COLUMNS: &str = "id, product_id, quantity, amount_cents, approve_payment, status, failure_reason, payment_id, followup, created_at, updated_at";

/// The nominal price of one unit. The order service owns no catalogue, so
/// it charges a fixed price; the amount only has to be a valid payment.
pub const UNIT_PRICE_CENTS: i64 = 1_000;

impl Order {
    pub fn amount(&self) -> f64 {
        self.amount_cents as f64 / 100.0
    }

    pub fn reason(&self) -> Option<Reason> {
        self.failure_reason.as_deref().and_then(Reason::parse)
    }
}

/// The saga's rules, for both modes. `None`: the event does not apply to the
/// order as it is (it is no longer pending, or a second payment verdict),
/// and must change nothing.
pub fn next(order: &Order, event: Event) -> Option<Transition> {
    if order.status != Status::Pending {
        return None;
    }
    let mut t = Transition {
        steps: Vec::new(),
        status: Status::Pending,
        reason: order.reason(),
        payment_id: order.payment_id,
        followup: None,
        command: None,
    };
    let of_order = OrderRef { order_id: order.id };
    let (name, outcome, detail) = match event {
        Event::Created => {
            t.command = Some(Command::Reserve(Reserve {
                order_id: order.id,
                product_id: order.product_id,
                quantity: order.quantity,
            }));
            let (name, outcome) = CREATED;
            (name, outcome, None)
        }
        Event::Reserved { quantity } => {
            t.command = Some(Command::Pay(PaymentRequest {
                amount: order.amount(),
                currency: "USD".into(),
                order_id: Some(order.id),
                force_decline: !order.approve_payment,
                payment_id: None,
            }));
            let detail = units(quantity);
            (StepName::StockReserved, StepOutcome::Ok, Some(detail))
        }
        Event::Refused { kind, detail } => {
            t.reason = Some(Reason::Refused(kind));
            t.status = Status::Failed;
            (StepName::StockReserved, StepOutcome::Refused, Some(detail))
        }
        Event::ReserveFailed { error } => {
            // The reservation may have happened before the call failed: release to be sure.
            t.reason = Some(Reason::InventoryUnavailable);
            t.command = Some(Command::Release(of_order));
            (StepName::StockReserved, StepOutcome::Failed, Some(error))
        }
        // Exactly one verdict per saga; another must not move stock.
        Event::Approved { .. } | Event::Declined { .. } | Event::PaymentFailed { .. }
            if order.payment_id.is_some() || order.reason().is_some() =>
        {
            return None;
        }
        Event::Approved {
            payment_id,
            transaction_id,
        } => {
            t.payment_id = Some(payment_id);
            t.command = Some(Command::Commit(of_order));
            (StepName::Payment, StepOutcome::Approved, transaction_id)
        }
        Event::Declined { payment_id, detail } => {
            t.payment_id = payment_id.or(t.payment_id);
            t.reason = Some(Reason::PaymentDeclined);
            t.command = Some(Command::Release(of_order));
            (StepName::Payment, StepOutcome::Declined, Some(detail))
        }
        Event::PaymentFailed { error } => {
            t.reason = Some(Reason::PaymentUnavailable);
            t.command = Some(Command::Release(of_order));
            (StepName::Payment, StepOutcome::Failed, Some(error))
        }
        Event::Committed => {
            t.status = Status::Confirmed;
            (StepName::ReservationCommitted, StepOutcome::Ok, None)
        }
        Event::CommitFailed { error } => {
            t.status = Status::Confirmed;
            t.followup = Some(Followup::Commit);
            (
                StepName::ReservationCommitted,
                StepOutcome::Failed,
                Some(error),
            )
        }
        Event::Released { quantity } => {
            t.status = Status::Failed;
            let detail = format!("{} returned", units(quantity));
            (StepName::StockReleased, StepOutcome::Ok, Some(detail))
        }
        Event::ReleaseFailed { error } => {
            t.status = Status::Failed;
            t.followup = Some(Followup::Release);
            (StepName::StockReleased, StepOutcome::Failed, Some(error))
        }
    };
    t.steps.push(step(name, outcome, detail));
    match t.status {
        Status::Pending => {}
        Status::Confirmed => t.reason = None,
        // A release only follows a decision to fail, which set the reason.
        Status::Failed => {
            t.reason = t.reason.or(Some(Reason::Interrupted));
        }
    }
    if t.status != Status::Pending {
        let name = if t.status == Status::Confirmed {
            StepName::OrderConfirmed
        } else {
            StepName::OrderFailed
        };
        let reason = t.reason.map(|r| r.as_str().to_owned());
        t.steps.push(step(name, StepOutcome::Done, reason));
    }
    Some(t)
}

/// The step a new order starts with ([`Event::Created`]'s).
const CREATED: (StepName, StepOutcome) = (StepName::OrderCreated, StepOutcome::Ok);

/// An order as asked for, before it is stored (its id is 0 until then).
pub fn draft(product_id: i64, quantity: i32, approve_payment: bool) -> Order {
    let now = Utc::now();
    Order {
        id: 0,
        product_id,
        quantity,
        amount_cents: i64::from(quantity) * UNIT_PRICE_CENTS,
        approve_payment,
        status: Status::Pending,
        failure_reason: None,
        payment_id: None,
        followup: None,
        created_at: now,
        updated_at: now,
    }
}

/// The command a new order's saga starts with ([`Event::Created`]'s).
pub fn first_command(order: &Order) -> Result<Command> {
    Ok(next(order, Event::Created)
        .and_then(|t| t.command)
        .ok_or_else(|| anyhow::anyhow!("a new order's saga starts with a command"))?)
}

/// A new order to store: its draft and, in async mode, its first command
/// as an event (its `order_id` set to the new order's id by the statement).
pub struct NewOrder {
    pub draft: Order,
    pub first: Option<Outgoing>,
}

/// Stores new orders, `pending`, each with its first step
/// ([`Event::Created`]'s) and, in async mode, its first command in the
/// outbox: one statement, which commits by itself (a batch of orders in
/// async mode, [`crate::seam`]). Returns each order with its first step,
/// in the batch's order.
pub async fn create(db: &PgPool, batch: Vec<NewOrder>) -> Result<Vec<(Order, Step)>> {
    let (step, outcome) = CREATED;
    let events = EventColumns::of(batch.iter().map(|o| o.first.as_ref()))?;
    let EventSql {
        unnest,
        names,
        sent,
    } = EventColumns::sql(&events, 7, "order_id", "id");
    // Each order's id is taken in `input` (materialised: one id per row,
    // the same wherever it is read), so that an order's row, its step, its
    // event and its answer are found by it.
    let query = format!(
        "WITH input AS MATERIALIZED (
             SELECT nextval('orders_id_seq') AS id, i.*
             FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bool[]{unnest})
                  WITH ORDINALITY AS i(product_id, quantity, amount_cents, approve_payment{names}, n)
         ), new AS (
             INSERT INTO orders (id, product_id, quantity, amount_cents, approve_payment, status)
             SELECT id, product_id, quantity, amount_cents, approve_payment, 'pending' FROM input
             RETURNING {COLUMNS}
         ), step AS (
             INSERT INTO saga_steps (order_id, step, outcome) SELECT id, $5, $6 FROM new
             RETURNING order_id, step, outcome, detail, at
         ){sent}
         SELECT new.*, step.step, step.outcome, step.detail, step.at
         FROM new JOIN step ON step.order_id = new.id JOIN input USING (id) ORDER BY input.n"
    );
    let drafts = || batch.iter().map(|o| &o.draft);
    let mut query = sqlx::query_as::<_, CreatedRow>(&query)
        .bind(drafts().map(|d| d.product_id).collect::<Vec<_>>())
        .bind(drafts().map(|d| d.quantity).collect::<Vec<_>>())
        .bind(drafts().map(|d| d.amount_cents).collect::<Vec<_>>())
        .bind(drafts().map(|d| d.approve_payment).collect::<Vec<_>>())
        .bind(step.as_str())
        .bind(outcome.as_str());
    if let Some(events) = events {
        query = events.bind(query);
    }
    let rows = query.fetch_all(db).await?;
    if rows.len() != batch.len() {
        return Err(anyhow::anyhow!("{} orders stored of {}", rows.len(), batch.len()).into());
    }
    Ok(rows.into_iter().map(|row| (row.order, row.step)).collect())
}

#[derive(sqlx::FromRow)]
struct CreatedRow {
    #[sqlx(flatten)]
    order: Order,
    #[sqlx(flatten)]
    step: Step,
}

/// Records a transition: its steps and the order's new fields, in one
/// statement (atomic without a transaction of its own). In async mode the
/// same statement writes `message`, the transition's command as an event,
/// to the outbox.
pub async fn apply<'e>(
    db: impl PgExecutor<'e>,
    order: &Order,
    t: &Transition,
    message: Option<(&str, Value)>,
) -> Result<Order> {
    let names: Vec<&str> = t.steps.iter().map(|s| s.name.as_str()).collect();
    let outcomes: Vec<&str> = t.steps.iter().map(|s| s.outcome.as_str()).collect();
    let details: Vec<Option<&str>> = t.steps.iter().map(|s| s.detail.as_deref()).collect();
    // Only async mode's schema has an outbox.
    let send = match message {
        Some(_) => format!(", sent AS ({})", common::events::outbox_insert(9)),
        None => String::new(),
    };
    let sql = format!(
        "WITH steps AS (
             INSERT INTO saga_steps (order_id, step, outcome, detail)
             SELECT $1, s.step, s.outcome, s.detail
             FROM unnest($2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS s(step, outcome, detail, n)
             ORDER BY s.n
         ){send}
         UPDATE orders SET status = $5, failure_reason = $6, payment_id = $7, followup = $8, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let mut query = sqlx::query_as(&sql)
        .bind(order.id)
        .bind(names)
        .bind(outcomes)
        .bind(details)
        .bind(t.status.as_str())
        .bind(t.reason.map(Reason::as_str))
        .bind(t.payment_id)
        .bind(t.followup.map(Followup::as_str));
    if let Some((kind, payload)) = &message {
        query = common::events::bind_outgoing(query, kind, payload, order.created_at);
    }
    Ok(query.fetch_one(db).await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Step {
    pub step: String,
    pub outcome: String,
    pub detail: Option<String>,
    pub at: DateTime<Utc>,
}

/// An order with its steps, as `GET /orders/{id}` shows it (read in
/// `db`: the pool, or the transaction that recorded them, so that an
/// accepted order's answer needs no read after its commit).
pub async fn view<'e>(db: impl PgExecutor<'e>, order: &Order) -> Result<Value> {
    let steps: Vec<Step> = sqlx::query_as(
        "SELECT step, outcome, detail, at FROM saga_steps WHERE order_id = $1 ORDER BY id",
    )
    .bind(order.id)
    .fetch_all(db)
    .await?;
    Ok(body(order, &steps))
}

/// The body that shows `order` with `steps`.
pub fn body(order: &Order, steps: &[Step]) -> Value {
    let mut body = serde_json::to_value(order).unwrap_or_default();
    body["amount"] = json!(order.amount());
    body["steps"] = json!(steps);
    body["status_url"] = json!(format!("/orders/{}", order.id));
    body
}

pub async fn find(ctx: &Ctx, id: i64) -> Result<Order> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM orders WHERE id = $1"))
        .bind(id)
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| Error::not_found(format!("order {id}")))
}

/// Claims `msg` for a consumer's step and locks the order it is about, in
/// one statement: the order as it is now, locked until the transaction
/// ends, or `None` when the message was handled before.
pub async fn claim_and_lock(
    conn: &mut PgConnection,
    msg: &Incoming,
    id: i64,
) -> Result<Option<Order>> {
    let sql = common::events::claiming(&format!(
        "SELECT EXISTS (SELECT 1 FROM claim) AS claimed, {COLUMNS} FROM orders WHERE id = $3 FOR UPDATE OF orders"
    ));
    let locked: Locked = msg
        .bind_claim(sqlx::query_as(&sql))
        .bind(id)
        .fetch_one(conn)
        .await?;
    Ok(locked.claimed.then_some(locked.order))
}

#[derive(sqlx::FromRow)]
struct Locked {
    claimed: bool,
    #[sqlx(flatten)]
    order: Order,
}

/// Records one step outside the state machine (the background follow-ups).
pub async fn record<'e>(db: impl PgExecutor<'e>, order_id: i64, s: &NewStep) -> Result<()> {
    sqlx::query("INSERT INTO saga_steps (order_id, step, outcome, detail) VALUES ($1, $2, $3, $4)")
        .bind(order_id)
        .bind(s.name.as_str())
        .bind(s.outcome.as_str())
        .bind(s.detail.as_deref())
        .execute(db)
        .await?;
    Ok(())
}

/// An inventory call owed by a finished saga was made at last.
pub async fn followup_done(ctx: &Ctx, id: i64, followup: Followup) -> Result<()> {
    let mut tx = ctx.begin().await?;
    sqlx::query(
        "UPDATE orders SET followup = NULL, updated_at = now() WHERE id = $1 AND followup = $2",
    )
    .bind(id)
    .bind(followup.as_str())
    .execute(&mut *tx)
    .await?;
    let done = step(
        followup.step(),
        StepOutcome::Ok,
        Some("retried in the background".into()),
    );
    record(&mut *tx, id, &done).await?;
    tx.commit().await?;
    Ok(())
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RefusalKind::*;
    use StepName::*;
    use StepOutcome as O;

    fn order(status: Status, reason: Option<Reason>, payment: Option<Uuid>) -> Order {
        Order {
            id: 7,
            product_id: 3,
            quantity: 2,
            amount_cents: 2_000,
            approve_payment: false,
            status,
            failure_reason: reason.map(|r| r.as_str().to_owned()),
            payment_id: payment,
            followup: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn pending() -> Order {
        order(Status::Pending, None, None)
    }

    fn steps(t: &Transition) -> Vec<(StepName, StepOutcome, Option<&str>)> {
        t.steps
            .iter()
            .map(|s| (s.name, s.outcome, s.detail.as_deref()))
            .collect()
    }

    fn release() -> Option<Command> {
        Some(Command::Release(OrderRef { order_id: 7 }))
    }

    #[test]
    fn every_transition_of_the_saga() {
        let paid = Uuid::from_u128(1);
        let declining = order(Status::Pending, Some(Reason::PaymentDeclined), Some(paid));
        let payment_down = order(Status::Pending, Some(Reason::PaymentUnavailable), None);
        let approved = order(Status::Pending, None, Some(paid));
        let err = || "connection refused".to_owned();
        // (order, event, steps, status, reason, payment id, followup, command)
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            Order,
            Event,
            Vec<(StepName, StepOutcome, Option<&str>)>,
            Status,
            Option<Reason>,
            Option<Uuid>,
            Option<Followup>,
            Option<Command>,
        )> = vec![
            (
                pending(),
                Event::Created,
                vec![(OrderCreated, O::Ok, None)],
                Status::Pending,
                None,
                None,
                None,
                Some(Command::Reserve(Reserve {
                    order_id: 7,
                    product_id: 3,
                    quantity: 2,
                })),
            ),
            (
                pending(),
                Event::Reserved { quantity: 2 },
                vec![(StockReserved, O::Ok, Some("2 units"))],
                Status::Pending,
                None,
                None,
                None,
                Some(Command::Pay(PaymentRequest {
                    amount: 20.0,
                    currency: "USD".into(),
                    order_id: Some(7),
                    force_decline: true,
                    payment_id: None,
                })),
            ),
            (
                pending(),
                Event::Refused {
                    kind: NotEnoughStock,
                    detail: "not enough stock: 1 available".into(),
                },
                vec![
                    (
                        StockReserved,
                        O::Refused,
                        Some("not enough stock: 1 available"),
                    ),
                    (OrderFailed, O::Done, Some("not enough stock")),
                ],
                Status::Failed,
                Some(Reason::Refused(NotEnoughStock)),
                None,
                None,
                None,
            ),
            (
                pending(),
                Event::ReserveFailed { error: err() },
                vec![(StockReserved, O::Failed, Some("connection refused"))],
                Status::Pending,
                Some(Reason::InventoryUnavailable),
                None,
                None,
                release(),
            ),
            (
                pending(),
                Event::Approved {
                    payment_id: paid,
                    transaction_id: Some("tx_1".into()),
                },
                vec![(Payment, O::Approved, Some("tx_1"))],
                Status::Pending,
                None,
                Some(paid),
                None,
                Some(Command::Commit(OrderRef { order_id: 7 })),
            ),
            (
                pending(),
                Event::Declined {
                    payment_id: Some(paid),
                    detail: "declined".into(),
                },
                vec![(Payment, O::Declined, Some("declined"))],
                Status::Pending,
                Some(Reason::PaymentDeclined),
                Some(paid),
                None,
                release(),
            ),
            (
                pending(),
                Event::PaymentFailed { error: err() },
                vec![(Payment, O::Failed, Some("connection refused"))],
                Status::Pending,
                Some(Reason::PaymentUnavailable),
                None,
                None,
                release(),
            ),
            (
                approved.clone(),
                Event::Committed,
                vec![
                    (ReservationCommitted, O::Ok, None),
                    (OrderConfirmed, O::Done, None),
                ],
                Status::Confirmed,
                None,
                Some(paid),
                None,
                None,
            ),
            (
                approved,
                Event::CommitFailed { error: err() },
                vec![
                    (ReservationCommitted, O::Failed, Some("connection refused")),
                    (OrderConfirmed, O::Done, None),
                ],
                Status::Confirmed,
                None,
                Some(paid),
                Some(Followup::Commit),
                None,
            ),
            (
                declining,
                Event::Released { quantity: 2 },
                vec![
                    (StockReleased, O::Ok, Some("2 units returned")),
                    (OrderFailed, O::Done, Some("payment declined")),
                ],
                Status::Failed,
                Some(Reason::PaymentDeclined),
                Some(paid),
                None,
                None,
            ),
            (
                payment_down,
                Event::ReleaseFailed { error: err() },
                vec![
                    (StockReleased, O::Failed, Some("connection refused")),
                    (OrderFailed, O::Done, Some("payment service unavailable")),
                ],
                Status::Failed,
                Some(Reason::PaymentUnavailable),
                None,
                Some(Followup::Release),
                None,
            ),
        ];
        for (order, event, want_steps, status, reason, payment, followup, command) in table {
            let t = next(&order, event.clone()).unwrap_or_else(|| panic!("{event:?} applies"));
            assert_eq!(steps(&t), want_steps, "{event:?}");
            assert_eq!(
                (t.status, t.reason, t.payment_id, t.followup, t.command),
                (status, reason, payment, followup, command),
                "{event:?}"
            );
        }
    }

    #[test]
    fn one_unit_is_not_units() {
        let declining = order(
            Status::Pending,
            Some(Reason::PaymentDeclined),
            Some(Uuid::from_u128(1)),
        );
        let detail = |order: &Order, event| {
            next(order, event).and_then(|t| steps(&t)[0].2.map(str::to_owned))
        };
        let reserved = detail(&pending(), Event::Reserved { quantity: 1 });
        assert_eq!(reserved.as_deref(), Some("1 unit"));
        let released = detail(&declining, Event::Released { quantity: 1 });
        assert_eq!(released.as_deref(), Some("1 unit returned"));
    }

    #[test]
    fn each_refusal_keeps_its_kind() {
        for (kind, text) in [
            (UnknownProduct, "unknown product"),
            (NotEnoughStock, "not enough stock"),
            (OrderClosed, "order closed"),
        ] {
            let event = Event::Refused {
                kind,
                detail: String::new(),
            };
            let t = next(&pending(), event).expect("applies");
            assert_eq!(t.reason, Some(Reason::Refused(kind)));
            assert_eq!(t.reason.map(Reason::as_str), Some(text));
            assert_eq!(Reason::parse(text), Some(Reason::Refused(kind)));
        }
    }

    #[test]
    fn a_finished_order_and_a_second_verdict_change_nothing() {
        let paid = Uuid::from_u128(1);
        let verdicts = || {
            [
                Event::Approved {
                    payment_id: paid,
                    transaction_id: None,
                },
                Event::Declined {
                    payment_id: None,
                    detail: String::new(),
                },
                Event::PaymentFailed {
                    error: String::new(),
                },
            ]
        };
        for status in [Status::Confirmed, Status::Failed] {
            let done = order(status, None, None);
            for event in verdicts()
                .into_iter()
                .chain([Event::Committed, Event::Created])
            {
                assert_eq!(next(&done, event.clone()), None, "{status:?} {event:?}");
            }
        }
        let paid_already = order(Status::Pending, None, Some(paid));
        let compensating = order(Status::Pending, Some(Reason::PaymentUnavailable), None);
        for o in [paid_already, compensating] {
            for event in verdicts() {
                assert_eq!(next(&o, event.clone()), None, "{event:?}");
            }
        }
    }

    #[test]
    fn every_reason_reads_back_as_itself() {
        for r in [
            Reason::Refused(UnknownProduct),
            Reason::PaymentDeclined,
            Reason::PaymentUnavailable,
            Reason::InventoryUnavailable,
            Reason::Interrupted,
        ] {
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
    }
}
