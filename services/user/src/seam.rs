//! How the user service tells the email service about a new user: the only
//! place in this service where the mode forks.

#[cfg(not(feature = "async"))]
use common::messages::EmailSent;
use common::messages::SendEmail;
use common::{Ctx, Delivery, Result};
use sqlx::{Postgres, Transaction};

use crate::{EmailOutcome, User};

pub const WELCOME_SUBJECT: &str = "Welcome to the lab";

fn welcome(user: &User) -> SendEmail {
    SendEmail {
        to: user.email.clone(),
        subject: WELCOME_SUBJECT.to_owned(),
        user_id: Some(user.id),
    }
}

/// Sync: commit the user first (no database connection is held across the
/// call, the mistake that capped the original at 28.6 req/s), then block a
/// worker thread on the email service until it answers or times out.
#[cfg(not(feature = "async"))]
pub async fn welcome_email(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    user: &User,
) -> Result<Delivery<EmailOutcome>> {
    tx.commit().await?;
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

#[cfg(feature = "async")]
pub async fn welcome_email(
    ctx: &Ctx,
    tx: Transaction<'static, Postgres>,
    user: &User,
) -> Result<Delivery<EmailOutcome>> {
    let _ = (ctx, welcome(user));
    tx.commit().await?;
    Err(anyhow::anyhow!("async mode is not built yet").into())
}
