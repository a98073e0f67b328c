//! How search hears of product changes: the `/index` route in sync mode (in
//! `lib.rs`), its own queue of `product.changed` events in async mode; both
//! take [`crate::INDEX`]. The only place in this service where the mode forks.

use common::events::Consumer;

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "search.product-changed",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| {
        Box::pin(common::inbound::consume(ctx, msg, &crate::INDEX))
    }),
}];
