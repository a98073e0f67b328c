//! How email hears of emails to send: the `/send` route in sync mode (in
//! `lib.rs`), and in async mode this consumer, which calls the same
//! [`crate::send`]. The only place in this service where the mode forks.

use common::events::Consumer;

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "email.send",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| Box::pin(send_email(ctx, msg))),
}];

/// The inbox claim, the sent email and the `email.sent` event commit
/// together, after the simulated SMTP call: a message delivered twice
/// records one email.
#[cfg(feature = "async")]
async fn send_email(ctx: common::Ctx, msg: common::events::Incoming) -> common::Result<()> {
    use common::events::{enqueue, once};
    let email: common::messages::SendEmail = msg.payload()?;
    let accepted_at = msg.accepted_at;
    once(&ctx, &msg, ctx.settings.delays.email, move |conn| {
        Box::pin(async move {
            let sent = crate::record(&mut *conn, email).await?;
            enqueue(conn, "email.sent", &sent, accepted_at).await?;
            Ok(())
        })
    })
    .await?;
    Ok(())
}
