//! User service: registration (scenario 1). A user is saved, then the welcome
//! email is handed to the email service through [`seam`], the one place
//! where sync and async mode differ.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::error::conflict_on_unique;
use common::{Background, Ctx, Delivery, Error, JsonBody, PathParam, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::USER,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    Router::new()
        .route("/register", post(register))
        .route("/users/{id}", get(get_user))
        .with_state(ctx)
}

#[derive(Debug, Deserialize, Validate)]
struct Register {
    #[garde(email, length(max = 254))]
    email: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// `pending` until the email service answered (async), then `sent` or `failed`.
    pub email_status: String,
    pub email_sent_at: Option<DateTime<Utc>>,
    pub email_error: Option<String>,
}

/// What the welcome email came to, when the answer waited for it (sync mode).
#[derive(Debug, Clone, PartialEq)]
pub enum EmailOutcome {
    Sent { at: DateTime<Utc> },
    Failed { reason: String },
}

/// Scenario 1. Sync: 201 after the email went out (or failed; the user stays
/// registered either way). Async: 202 at once; the email follows.
async fn register(State(ctx): State<Ctx>, JsonBody(req): JsonBody<Register>) -> Result<Response> {
    req.validate()?;
    let email = req.email.trim();
    let mut tx = ctx.db.begin().await?;
    let user: User = sqlx::query_as(
        "INSERT INTO users (email) VALUES ($1)
         RETURNING id, email, created_at, email_status, email_sent_at, email_error",
    )
    .bind(email)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| {
        conflict_on_unique(
            e,
            format!("a user with email {email} is already registered"),
        )
    })?;
    tracing::info!(user_id = user.id, "user registered");
    match seam::welcome_email(&ctx, tx, &user).await? {
        Delivery::Done(outcome) => {
            let user =
                record_email_outcome(&mut *ctx.db.acquire().await?, user.id, &outcome).await?;
            Ok((StatusCode::CREATED, axum::Json(user)).into_response())
        }
        Delivery::Accepted => {
            Ok((StatusCode::ACCEPTED, axum::Json(with_status_url(user))).into_response())
        }
    }
}

fn with_status_url(user: User) -> serde_json::Value {
    let mut body = serde_json::to_value(&user).unwrap_or_default();
    body["status_url"] = format!("/users/{}", user.id).into();
    body
}

/// Stores what became of a user's welcome email.
pub async fn record_email_outcome(
    conn: &mut sqlx::PgConnection,
    user_id: i64,
    outcome: &EmailOutcome,
) -> Result<User> {
    let (status, sent_at, error) = match outcome {
        EmailOutcome::Sent { at } => ("sent", Some(*at), None),
        EmailOutcome::Failed { reason } => ("failed", None, Some(reason.as_str())),
    };
    let user = sqlx::query_as(
        "UPDATE users SET email_status = $2, email_sent_at = $3, email_error = $4 WHERE id = $1
         RETURNING id, email, created_at, email_status, email_sent_at, email_error",
    )
    .bind(user_id)
    .bind(status)
    .bind(sent_at)
    .bind(error)
    .fetch_one(conn)
    .await?;
    Ok(user)
}

async fn get_user(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<i64>,
) -> Result<axum::Json<User>> {
    sqlx::query_as("SELECT id, email, created_at, email_status, email_sent_at, email_error FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&ctx.db)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Error::not_found(format!("user {id}")))
}
