//! Email service: sends emails through a simulated SMTP server that takes
//! `EMAIL_DELAY_MS`, and records every email it sent.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::{EmailSent, SendEmail};
use common::{Background, Ctx, JsonBody, QueryParams, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::EMAIL,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, _: &mut Background) -> axum::Router {
    Router::new()
        .route("/send", post(send_handler))
        .route("/emails", get(list))
        .with_state(ctx)
}

#[derive(Debug, Deserialize, Validate)]
struct SendRequest {
    #[garde(email)]
    to: String,
    #[garde(length(min = 1, max = 200))]
    subject: String,
    #[garde(skip)]
    user_id: Option<i64>,
}

async fn send_handler(
    State(ctx): State<Ctx>,
    JsonBody(req): JsonBody<SendRequest>,
) -> Result<axum::Json<EmailSent>> {
    req.validate()?;
    let email = SendEmail {
        to: req.to,
        subject: req.subject,
        user_id: req.user_id,
    };
    Ok(axum::Json(SEND.answer(&ctx, email).await?))
}

/// Sends one email through the simulated SMTP server (`EMAIL_DELAY_MS`) and
/// records it: the `/send` route (sync, the answer is the reply) and the
/// `email.send` consumer (async, the reply is an `email.sent` event).
pub static SEND: Interaction<SendEmail, EmailSent> = Interaction {
    delay: |settings| settings.delays.email,
    effect: |conn, email| Box::pin(record(conn, email)),
    reply: Some("email.sent"),
    completes: None,
};

/// The record of [`SEND`].
async fn record<'e>(db: impl sqlx::PgExecutor<'e>, email: SendEmail) -> Result<EmailSent> {
    let (id, sent_at): (i64, DateTime<Utc>) = sqlx::query_as(
        "INSERT INTO emails (recipient, subject, user_id) VALUES ($1, $2, $3) RETURNING id, sent_at",
    )
    .bind(&email.to)
    .bind(&email.subject)
    .bind(email.user_id)
    .fetch_one(db)
    .await?;
    tracing::info!(email_id = id, user_id = email.user_id, "email sent");
    Ok(EmailSent {
        id,
        to: email.to,
        subject: email.subject,
        user_id: email.user_id,
        sent_at,
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    to: Option<String>,
    user_id: Option<i64>,
}

#[derive(Debug, Serialize)]
struct EmailList {
    count: usize,
    emails: Vec<EmailSent>,
}

#[derive(sqlx::FromRow)]
struct EmailRow {
    id: i64,
    recipient: String,
    subject: String,
    user_id: Option<i64>,
    sent_at: DateTime<Utc>,
}

/// The emails sent, newest first, optionally to one address or user (at most 1000).
async fn list(
    State(ctx): State<Ctx>,
    QueryParams(q): QueryParams<ListQuery>,
) -> Result<axum::Json<EmailList>> {
    let rows: Vec<EmailRow> = sqlx::query_as(
        "SELECT id, recipient, subject, user_id, sent_at FROM emails
         WHERE ($1::text IS NULL OR lower(recipient) = lower($1))
           AND ($2::bigint IS NULL OR user_id = $2)
         ORDER BY id DESC LIMIT 1000",
    )
    .bind(q.to)
    .bind(q.user_id)
    .fetch_all(&ctx.db)
    .await?;
    let emails: Vec<EmailSent> = rows
        .into_iter()
        .map(|r| EmailSent {
            id: r.id,
            to: r.recipient,
            subject: r.subject,
            user_id: r.user_id,
            sent_at: r.sent_at,
        })
        .collect();
    Ok(axum::Json(EmailList {
        count: emails.len(),
        emails,
    }))
}
