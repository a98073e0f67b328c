//! How search hears of product changes: the `/index` route in sync mode (in
//! `lib.rs`), its own queue in async mode. The only place in this service
//! where the mode forks.

use common::events::Consumer;

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "search.product-changed",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| Box::pin(product_changed(ctx, msg))),
}];

/// Async: this service's own queue of `product.changed` events; the record
/// and the inbox claim commit together, after the simulated cost.
#[cfg(feature = "async")]
async fn product_changed(ctx: common::Ctx, msg: common::events::Incoming) -> common::Result<()> {
    let change: common::messages::ProductChanged = msg.payload()?;
    let delay = ctx.settings.delays.search;
    let record = common::events::once(&ctx, &msg, delay, move |conn| {
        Box::pin(async move { crate::store(conn, &change).await.map(drop) })
    });
    if record.await?.is_some() {
        common::events::completed(&ctx, "product_update", msg.accepted_at);
    }
    Ok(())
}
