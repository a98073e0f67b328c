//! How the user service stores a new user and tells the email service about
//! them: the only place in this service where the mode forks.

use common::events::Consumer;
use common::messages::{EmailSent, SendEmail};
use common::{Background, Ctx, Delivery, Result};

use crate::{EmailOutcome, NewUser, User};

pub const WELCOME_SUBJECT: &str = "Welcome to the lab";

fn welcome(email: &str, user_id: i64) -> SendEmail {
    SendEmail {
        to: email.to_owned(),
        subject: WELCOME_SUBJECT.to_owned(),
        user_id: Some(user_id),
    }
}

/// Sync: each registration is its own statement. Twenty clients each
/// waiting 500 ms for the email send 40 a second, too few to share a write,
/// and handing each to a batcher would cost it a wake-up on the path.
#[cfg(not(feature = "async"))]
#[derive(Clone)]
pub struct Registrations;

#[cfg(not(feature = "async"))]
impl Registrations {
    pub fn new(_: &Ctx, _: &mut Background) -> Self {
        Registrations
    }

    async fn store(&self, ctx: &Ctx, email: &str) -> Result<User> {
        let user = NewUser {
            email: email.to_owned(),
            welcome: None,
        };
        let mut answers = crate::insert(ctx, vec![user]).await?;
        answers.pop().expect("one answer per registration")
    }
}

/// Sync: the user's INSERT commits by itself and its connection goes back
/// (no database connection is held across the call, the mistake that capped
/// the original at 28.6 req/s); then a worker thread blocks on the email
/// service until it answers or times out.
#[cfg(not(feature = "async"))]
pub async fn register(
    ctx: &Ctx,
    registrations: &Registrations,
    email: &str,
) -> Result<(User, Delivery<EmailOutcome>)> {
    let user = registrations.store(ctx, email).await?;
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

/// Async: registrations that arrive together share one statement, and so
/// one commit (a group commit, [`common::batch`]): at thousands a second,
/// PostgreSQL's CPU per registration is mostly the statement's and the
/// commit's, not the rows'. One batch at a time: those that arrive while it
/// is written make the next one. One in flight measured faster than two,
/// and two than four, in rate and CPU, the tails within their noise
/// (docs/measuring.md, "A thirteenth round").
#[cfg(feature = "async")]
#[derive(Clone)]
pub struct Registrations(common::batch::GroupCommit<NewUser, User>);

#[cfg(feature = "async")]
impl Registrations {
    pub fn new(ctx: &Ctx, background: &mut Background) -> Self {
        let batching = common::batch::Batching {
            name: "registration batcher",
            max: BATCH,
            in_flight: 1,
            unreachable: common::error::DATABASE_UNAVAILABLE,
        };
        Registrations(common::batch::GroupCommit::new(
            ctx,
            background,
            batching,
            |ctx, batch| async move { crate::insert(&ctx, batch).await },
        ))
    }
}

/// Async: the kind of the event a new user's welcome email travels as.
#[cfg(feature = "async")]
const REGISTERED: &str = "user.registered";

/// Async: registrations in one statement, at most.
#[cfg(feature = "async")]
const BATCH: usize = 64;

/// Async: the user and the email request (`user.registered`, to the outbox)
/// are one statement, shared with the registrations that arrived with it;
/// the answer (202) does not wait for the email.
#[cfg(feature = "async")]
pub async fn register(
    ctx: &Ctx,
    registrations: &Registrations,
    email: &str,
) -> Result<(User, Delivery<EmailOutcome>)> {
    // The id is the new user's, set by the statement.
    let welcome = common::events::Outgoing::about_new(REGISTERED, &welcome(email, 0), "user_id")?;
    let user = registrations
        .0
        .join(NewUser {
            email: email.to_owned(),
            welcome: Some(welcome),
        })
        .await?;
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
