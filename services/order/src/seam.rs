//! How the order saga is driven: the only place in this service where the
//! mode forks. Both modes follow the same state machine ([`crate::saga`]);
//! sync mode carries its commands as blocking calls within the request
//! ([`crate::orchestration`]), async mode as events ([`crate::choreography`]).

use common::events::Consumer;
use common::{Background, Ctx, Result};

use crate::saga::{self, NewOrder, Order};

/// How a saga started: finished, with the final order and what made it fail
/// (sync), or accepted, with the order as the answer shows it, built from
/// what its one statement returned (no read after the commit that could fail
/// and answer an error for an order that was stored).
#[allow(dead_code)] // each mode's build makes one of the two
pub enum Started {
    Done(Order, Option<String>),
    Accepted(serde_json::Value),
}

/// Sync: the order is stored (its statement commits by itself), then the
/// request runs the saga to its end. Twenty clients each waiting two
/// seconds for the payment send ten orders a second, too few to share a
/// write, so none is batched.
#[cfg(not(feature = "async"))]
#[derive(Clone)]
pub struct Orders;

#[cfg(not(feature = "async"))]
impl Orders {
    pub fn new(_: &Ctx, _: &mut Background) -> Self {
        Orders
    }
}

#[cfg(not(feature = "async"))]
pub async fn start_saga(ctx: &Ctx, _: &Orders, draft: Order) -> Result<Started> {
    let new = NewOrder { draft, first: None };
    let mut created = saga::create(&ctx.db, vec![new]).await?;
    let (order, _) = created.pop().expect("one order per draft");
    tracing::info!(order_id = order.id, "order created");
    let first = saga::first_command(&order)?;
    let (order, cause) = crate::orchestration::run(ctx, order, first).await?;
    Ok(Started::Done(order, cause))
}

/// Async: orders that arrive together share one statement, and so one
/// commit ([`common::batch`]), as registrations do (see the user service's
/// seam): one batch at a time, those arriving meanwhile make the next.
#[cfg(feature = "async")]
#[derive(Clone)]
pub struct Orders(common::batch::GroupCommit<NewOrder, (Order, saga::Step)>);

#[cfg(feature = "async")]
impl Orders {
    pub fn new(ctx: &Ctx, background: &mut Background) -> Self {
        let batching = common::batch::Batching {
            name: "order batcher",
            max: BATCH,
            in_flight: 1,
            unreachable: common::error::DATABASE_UNAVAILABLE,
        };
        Orders(common::batch::GroupCommit::new(
            ctx,
            background,
            batching,
            |ctx, batch| async move {
                Ok(saga::create(&ctx.db, batch)
                    .await?
                    .into_iter()
                    .map(Ok)
                    .collect())
            },
        ))
    }
}

/// Async: orders in one statement, at most.
#[cfg(feature = "async")]
const BATCH: usize = 64;

/// Async: the order and its first command (`stock.reserve`, to the outbox)
/// are one statement, shared with the orders that arrived with it;
/// inventory, payment and this service's saga consumer take it from there.
#[cfg(feature = "async")]
pub async fn start_saga(ctx: &Ctx, orders: &Orders, draft: Order) -> Result<Started> {
    let (kind, payload) = crate::choreography::message(&saga::first_command(&draft)?)?;
    let first = common::events::Outgoing::about_new(kind, &payload, "order_id")?;
    let (order, step) = orders
        .0
        .join(NewOrder {
            draft,
            first: Some(first),
        })
        .await?;
    tracing::info!(order_id = order.id, "order created");
    ctx.bus.wake_relay();
    Ok(Started::Accepted(saga::body(&order, &[step])))
}

/// Sync: inventory calls a finished saga still owes are retried in the background.
#[cfg(not(feature = "async"))]
pub fn background(ctx: &Ctx, background: &mut Background) {
    background.spawn("saga follow-ups", crate::followups::run(ctx.clone()));
}

/// Async: nothing is owed; each step waits in its queue until it is taken.
#[cfg(feature = "async")]
pub fn background(_: &Ctx, _: &mut Background) {}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "order.saga",
    prefetch: common::events::db_bound_prefetch,
    handle: common::events::Handle::One(|ctx, msg| {
        Box::pin(crate::choreography::advance(ctx, msg))
    }),
}];
