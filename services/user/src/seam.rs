//! How the user service tells the email service about a new user: the only
//! place in this service where the mode forks.

use common::events::Consumer;
use common::messages::{EmailSent, SendEmail};
use common::{Ctx, Delivery, Result};

use crate::{EmailOutcome, User};

pub const WELCOME_SUBJECT: &str = "Welcome to the lab";

fn welcome(email: &str, user_id: i64) -> SendEmail {
    SendEmail {
        to: email.to_owned(),
        subject: WELCOME_SUBJECT.to_owned(),
        user_id: Some(user_id),
    }
}

/// Sync: the user's INSERT commits by itself and its connection goes back
/// (no database connection is held across the call, the mistake that capped
/// the original at 28.6 req/s); then a worker thread blocks on the email
/// service until it answers or times out.
#[cfg(not(feature = "async"))]
pub async fn register(ctx: &Ctx, email: &str) -> Result<(User, Delivery<EmailOutcome>)> {
    let user = crate::insert(ctx, email, None).await?;
    let answer = ctx
        .call::<_, EmailSent>("email", "/send", welcome(&user.email, user.id))
        .await?;
    let outcome = match answer {
        Ok(sent) => EmailOutcome::Sent { at: sent.sent_at },
        Err(e) => EmailOutcome::Failed {
            reason: e.to_string(),
        },
    };
    Ok((user, Delivery::Done(outcome)))
}

/// Async: the user and the email request (`user.registered`, to the outbox)
/// are one statement; the answer (202) does not wait for the email.
#[cfg(feature = "async")]
pub async fn register(ctx: &Ctx, email: &str) -> Result<(User, Delivery<EmailOutcome>)> {
    // The id is the new user's, set by the statement.
    let event = serde_json::to_value(welcome(email, 0)).map_err(anyhow::Error::from)?;
    let user = crate::insert(ctx, email, Some(("user.registered", event))).await?;
    ctx.bus.wake_relay();
    Ok((user, Delivery::Accepted))
}

#[cfg(not(feature = "async"))]
pub const CONSUMERS: &[Consumer] = &[];

/// Async: the email service's answer arrives as an event.
#[cfg(feature = "async")]
pub const CONSUMERS: &[Consumer] = &[Consumer {
    queue: "user.email-sent",
    prefetch: common::events::prefetch,
    handle: common::events::Handle::One(|ctx, msg| Box::pin(email_sent(ctx, msg))),
}];

#[cfg(feature = "async")]
async fn email_sent(ctx: Ctx, msg: common::events::Incoming) -> Result<()> {
    let sent: EmailSent = msg.payload()?;
    let Some(user_id) = sent.user_id else {
        return Ok(());
    };
    let mut tx = ctx.begin().await?;
    if !msg.claim(&mut tx).await? {
        return Ok(());
    }
    let outcome = EmailOutcome::Sent { at: sent.sent_at };
    let user = crate::record_email_outcome(&mut tx, user_id, &outcome).await?;
    tx.commit().await?;
    common::events::completed(&ctx, "registration", user.created_at);
    Ok(())
}
