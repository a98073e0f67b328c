//! How the user service tells the email service about a new user: the only
//! place in this service where the mode forks.

use common::events::Consumer;
use common::messages::{EmailSent, SendEmail};
use common::{Ctx, Delivery, Result};

use crate::{EmailOutcome, User};

pub const WELCOME_SUBJECT: &str = "Welcome to the lab";

fn welcome(user: &User) -> SendEmail {
    SendEmail {
        to: user.email.clone(),
        subject: WELCOME_SUBJECT.to_owned(),
        user_id: Some(user.id),
    }
}

/// Sync: the user's INSERT has committed by itself; give its connection
/// back first (no database connection is held across the call, the mistake that capped the original at 28.6 req/s), then block a
/// worker thread on the email service until it answers or times out.
#[cfg(not(feature = "async"))]
pub async fn welcome_email(
    ctx: &Ctx,
    write: common::db::Write,
    user: &User,
) -> Result<Delivery<EmailOutcome>> {
    // The write committed by itself: only the connection goes back.
    drop(write);
    let answer = ctx
        .call::<_, EmailSent>("email", "/send", welcome(user))
        .await?;
    Ok(Delivery::Done(match answer {
        Ok(sent) => EmailOutcome::Sent { at: sent.sent_at },
        Err(e) => EmailOutcome::Failed {
            reason: e.to_string(),
        },
    }))
}

/// Async: the email request goes to the outbox in the user's own
/// transaction; the answer (202) does not wait for it.
#[cfg(feature = "async")]
pub async fn welcome_email(
    ctx: &Ctx,
    write: common::db::Write,
    user: &User,
) -> Result<Delivery<EmailOutcome>> {
    common::events::commit_with_event(
        ctx,
        write,
        "user.registered",
        &welcome(user),
        user.created_at,
    )
    .await?;
    Ok(Delivery::Accepted)
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
