//! How email hears of emails to send: the `/send` route in sync mode (in
//! `lib.rs`), the `email.send` queue in async mode; both take
//! [`crate::SEND`]. The only place in this service where the mode forks.

use common::events::Consumer;

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "email.send",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| {
        Box::pin(common::inbound::consume(ctx, msg, &crate::SEND))
    }),
}];
