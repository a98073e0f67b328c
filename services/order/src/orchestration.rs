//! Sync mode's saga driver: orchestration. The request itself carries out
//! each command of the state machine ([`crate::saga::next`]) as a blocking
//! call to inventory or payment and turns the answer into the next event,
//! until the saga ends.

use common::messages::{PaymentResult, RefusalKind, Reservation};
use common::outbound::CallError;
use common::{Ctx, Result};

use crate::saga::{self, Command, Event, Order};

/// Runs the saga from `command` to its end. Returns the final order and, if
/// it failed, what made it fail (the answer that set its reason). A saga
/// broken off by an error (the database gone mid-way) is failed and its
/// stock release owed before the error is answered.
pub async fn run(ctx: &Ctx, order: Order, first: Command) -> Result<(Order, Option<String>)> {
    let id = order.id;
    let run = drive(ctx, order, first).await;
    if run.is_err() {
        crate::followups::abandon_interrupted(ctx, id, ctx.settings.outbound_timeout).await;
    }
    run
}

async fn drive(ctx: &Ctx, mut order: Order, first: Command) -> Result<(Order, Option<String>)> {
    let mut event = call(ctx, first).await?;
    let mut cause = None;
    while let Some(mut t) = saga::next(&order, event) {
        if t.reason.is_some() && cause.is_none() {
            cause = t.steps[0].detail.clone();
        }
        // The step is recorded while the next command's call is made, and
        // the saga goes on when both are done. A crash between the two
        // changes nothing a recovery reads: the order is `pending` either
        // way, and the stale sweep fails it and owes its release
        // ([`crate::followups`]).
        let Some(command) = t.command.take() else {
            order = saga::apply(&ctx.db, &order, &t, None).await?;
            break;
        };
        let (recorded, answered) =
            tokio::join!(saga::apply(&ctx.db, &order, &t, None), call(ctx, command));
        order = recorded?;
        event = answered?;
    }
    Ok((order, cause))
}

/// One command as a blocking call, and its answer as an event.
async fn call(ctx: &Ctx, command: Command) -> Result<Event> {
    Ok(match command {
        Command::Reserve(reserve) => {
            match ctx
                .call::<_, Reservation>("inventory", "/reservations", reserve)
                .await?
            {
                Ok(r) => Event::Reserved {
                    quantity: r.quantity,
                },
                Err(e) => match refusal(&e) {
                    Some(kind) => Event::Refused {
                        kind,
                        detail: e.detail().map_or_else(|| e.to_string(), str::to_owned),
                    },
                    None => Event::ReserveFailed {
                        error: e.to_string(),
                    },
                },
            }
        }
        Command::Pay(payment) => {
            match ctx
                .call::<_, PaymentResult>("payment", "/process_payment", payment)
                .await?
            {
                Ok(paid) => Event::Approved {
                    payment_id: paid.payment_id,
                    transaction_id: paid.transaction_id,
                },
                Err(e) if e.status() == Some(402) => Event::Declined {
                    payment_id: declined_payment_id(&e),
                    detail: e.detail().unwrap_or("declined").to_owned(),
                },
                Err(e) => Event::PaymentFailed {
                    error: e.to_string(),
                },
            }
        }
        Command::Commit(of) => {
            let path = format!("/reservations/{}/commit", of.order_id);
            match ctx.call::<_, Reservation>("inventory", &path, ()).await? {
                Ok(_) => Event::Committed,
                Err(e) => Event::CommitFailed {
                    error: e.to_string(),
                },
            }
        }
        Command::Release(of) => {
            let path = format!("/reservations/{}/release", of.order_id);
            match ctx.call::<_, Reservation>("inventory", &path, ()).await? {
                Ok(r) => Event::Released {
                    quantity: r.released_quantity,
                },
                Err(e) => Event::ReleaseFailed {
                    error: e.to_string(),
                },
            }
        }
    })
}

/// Inventory's 404/409 names its refusal's kind.
fn refusal(e: &CallError) -> Option<RefusalKind> {
    match e {
        CallError::Status {
            status: 404 | 409,
            body,
            ..
        } => serde_json::from_value(body.get("refusal")?.clone()).ok(),
        _ => None,
    }
}

fn declined_payment_id(e: &CallError) -> Option<uuid::Uuid> {
    match e {
        CallError::Status { body, .. } => body["payment"]["payment_id"]
            .as_str()
            .and_then(|s| s.parse().ok()),
        _ => None,
    }
}
