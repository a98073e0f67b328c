//! Email service: sends emails through a simulated SMTP server that takes
//! `EMAIL_DELAY_MS`, and records every email it sent.

mod seam;

use axum::extract::State;
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::{EmailSent, SendEmail};
use common::{Background, Ctx, JsonBody, QueryParams, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::EMAIL,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(send_handler))
        .routes(routes!(list))
}

fn routes(ctx: Ctx, _: &mut Background) -> axum::Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::EMAIL, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct SendRequest {
    /// A valid email address.
    #[garde(email)]
    #[schema(format = Email)]
    to: String,
    /// 1 to 200 characters.
    #[garde(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    subject: String,
    /// The user the email is for, if any.
    #[garde(skip)]
    user_id: Option<i64>,
}

/// Sends an email through the simulated SMTP server (`EMAIL_DELAY_MS`) and
/// records it; answers when it is sent.
#[utoipa::path(post, path = "/send", tag = "email",
    request_body = SendRequest,
    responses(
        (status = 200, description = "The email was sent.", body = EmailSent),
        (status = 422, description = "`to` is not a valid address, or `subject` is empty or longer than 200 characters.", body = common::ErrorBody),
    ),
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the emails to this address (case-insensitive).
    to: Option<String>,
    /// Only the emails for this user.
    user_id: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
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
#[utoipa::path(get, path = "/emails", tag = "email",
    params(ListQuery),
    responses((status = 200, description = "The emails sent, newest first.", body = EmailList)),
)]
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
