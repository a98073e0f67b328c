//! How the order saga is driven: the only place in this service where the
//! mode forks. Both modes follow the same state machine ([`crate::saga`]);
//! sync mode carries its commands as blocking calls within the request
//! ([`crate::orchestration`]), async mode as events ([`crate::choreography`]).

use common::events::Consumer;
use common::{Ctx, Result};

use crate::saga::{self, Order};

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
/// request runs the saga to its end.
#[cfg(not(feature = "async"))]
pub async fn start_saga(ctx: &Ctx, draft: Order) -> Result<Started> {
    let (order, _) = saga::create(&ctx.db, &draft, None).await?;
    let first = saga::first_command(&order)?;
    let (order, cause) = crate::orchestration::run(ctx, order, first).await?;
    Ok(Started::Done(order, cause))
}

/// Async: the order and its first command (`stock.reserve`) are stored in
/// one statement; inventory, payment and this service's saga consumer take
/// it from there.
#[cfg(feature = "async")]
pub async fn start_saga(ctx: &Ctx, draft: Order) -> Result<Started> {
    let first = crate::choreography::message(&saga::first_command(&draft)?)?;
    let (order, step) = saga::create(&ctx.db, &draft, Some(first)).await?;
    ctx.bus.wake_relay();
    Ok(Started::Accepted(saga::body(&order, &[step])))
}

/// Sync: inventory calls a finished saga still owes are retried in the background.
#[cfg(not(feature = "async"))]
pub fn background(ctx: &Ctx, background: &mut common::Background) {
    background.spawn("saga follow-ups", crate::followups::run(ctx.clone()));
}

/// Async: nothing is owed; each step waits in its queue until it is taken.
#[cfg(feature = "async")]
pub fn background(_: &Ctx, _: &mut common::Background) {}

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
