//! The inbound side of an interaction, written once for both modes: the
//! simulated external work (`*_DELAY_MS`) and the effect on the service's own
//! records, whichever way the work arrived. A sync route takes it
//! [`Via::Request`] (the delay runs while the effect is recorded, the answer
//! is the reply); an async consumer takes it [`Via::Message`] (once per
//! message: the delay first, then the inbox claim, the effect and the reply
//! event in one transaction).

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;

use crate::events::{InTx, Incoming, completed, enqueue, once};
use crate::{Ctx, Result, Settings};

/// How a piece of inbound work reached the service.
#[derive(Debug, Clone, Copy)]
pub enum Via<'m> {
    /// An HTTP request: the caller waits for the answer.
    Request,
    /// A queue message: its effect happens once however often it comes.
    Message(&'m Incoming),
}

/// One interaction as the service that takes it sees it.
pub struct Interaction<I: 'static, O: 'static> {
    /// The simulated external work that precedes the effect.
    pub delay: fn(&Settings) -> Duration,
    /// The effect on the service's records, on one connection (inside the
    /// message's transaction when it came as a message).
    pub effect: for<'c> fn(&'c mut PgConnection, I) -> InTx<'c, O>,
    /// The event that answers a message (e.g. `email.sent`), enqueued with the effect.
    pub reply: Option<&'static str>,
    /// The async scenario this interaction finishes (`async_completion_seconds`).
    pub completes: Option<&'static str>,
}

impl<I: Send, O: Serialize + Send + Sync> Interaction<I, O> {
    /// Takes `input` as a request and answers with the effect's outcome.
    pub async fn answer(&self, ctx: &Ctx, input: I) -> Result<O> {
        let out = self.take(ctx, Via::Request, input).await?;
        out.ok_or_else(|| anyhow::anyhow!("a request is always taken").into())
    }

    /// Takes `input`: `None` when it came as a message already handled.
    pub async fn take(&self, ctx: &Ctx, via: Via<'_>, input: I) -> Result<Option<O>> {
        let delay = (self.delay)(&ctx.settings);
        let effect = self.effect;
        let msg = match via {
            Via::Request => {
                let record = async {
                    let mut conn = ctx.db.acquire().await?;
                    effect(&mut conn, input).await
                };
                return Ok(Some(ctx.with_latency(delay, record).await?));
            }
            Via::Message(msg) => msg,
        };
        let (reply, at) = (self.reply, msg.accepted_at);
        let out = once(ctx, msg, delay, move |conn| {
            Box::pin(async move {
                let out = effect(&mut *conn, input).await?;
                if let Some(kind) = reply {
                    enqueue(conn, kind, &out, at).await?;
                }
                Ok(out)
            })
        })
        .await?;
        #[cfg(feature = "async")]
        if out.is_some() && reply.is_some() {
            ctx.bus.wake_relay();
        }
        if let (Some(_), Some(scenario)) = (&out, self.completes) {
            completed(ctx, scenario, at);
        }
        Ok(out)
    }
}

/// The one consumer of an interaction: the message's payload, taken once.
pub async fn consume<I, O>(
    ctx: Ctx,
    msg: Incoming,
    interaction: &'static Interaction<I, O>,
) -> Result<()>
where
    I: DeserializeOwned + Send,
    O: Serialize + Send + Sync,
{
    let input = msg.payload()?;
    interaction.take(&ctx, Via::Message(&msg), input).await?;
    Ok(())
}
