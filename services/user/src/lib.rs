//! User service: registration (scenario 1). A user is saved, then the welcome
//! email is handed to the email service through [`seam`], the one place
//! where sync and async mode differ.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use common::events::{EventColumns, EventSql, Outgoing};
use common::{
    Background, Ctx, Delivery, Error, ErrorBody, JsonBody, PathParam, Result, ServiceDef,
};
use garde::Validate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::USER,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// A [`User`]'s columns, as every statement reads them.
const COLUMNS: &str = "id, email, created_at, email_status, email_sent_at, email_error";

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(register))
        .routes(routes!(get_user))
}

fn routes(ctx: Ctx, background: &mut Background) -> Router {
    let registrations = seam::Registrations::new(&ctx, background);
    let (router, _) = api().split_for_parts();
    router.with_state(AppState { ctx, registrations })
}

/// How registrations are stored, next to the context.
#[derive(Clone, axum::extract::FromRef)]
struct AppState {
    ctx: Ctx,
    registrations: seam::Registrations,
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::USER, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct Register {
    /// A valid email address, at most 254 characters; unique.
    #[garde(email, length(max = 254))]
    #[schema(example = "user@example.com", format = Email, max_length = 254)]
    email: String,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub created_at: DateTime<Utc>,
    /// `pending` until the email service answered (async), then `sent` or `failed`.
    pub email_status: String,
    pub email_sent_at: Option<DateTime<Utc>>,
    pub email_error: Option<String>,
}

/// A registration accepted in async mode: the user, and where to follow it.
#[cfg(feature = "async")]
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `with_status_url` builds
struct UserAccepted {
    #[serde(flatten)]
    user: User,
    /// `/users/{id}`, where `email_status` turns `sent`.
    status_url: String,
}

/// What the welcome email came to, when the answer waited for it (sync mode).
#[derive(Debug, Clone, PartialEq)]
pub enum EmailOutcome {
    Sent { at: DateTime<Utc> },
    Failed { reason: String },
}

/// Scenario 1. Sync: 201 after the email went out (or failed; the user stays
/// registered either way). Async: 202 at once; the email follows.
#[cfg_attr(not(feature = "async"), utoipa::path(post, path = "/register", tag = "user",
    request_body = Register,
    responses(
        (status = 201, description = "Registered, after the welcome email was sent (`email_status: \"sent\"`) or failed (`\"failed\"`, with `email_error`).", body = User),
        (status = 409, description = "A user with this email is already registered.", body = ErrorBody),
        (status = 422, description = "The email is not a valid address of at most 254 characters.", body = ErrorBody),
    ),
))]
#[cfg_attr(feature = "async", utoipa::path(post, path = "/register", tag = "user",
    request_body = Register,
    responses(
        (status = 202, description = "Registered; the welcome email follows (`email_status: \"pending\"` until `status_url` shows `sent`).", body = UserAccepted),
        (status = 409, description = "A user with this email is already registered.", body = ErrorBody),
        (status = 422, description = "The email is not a valid address of at most 254 characters.", body = ErrorBody),
    ),
))]
async fn register(
    State(ctx): State<Ctx>,
    State(registrations): State<seam::Registrations>,
    JsonBody(req): JsonBody<Register>,
) -> Result<Response> {
    req.validate()?;
    let (user, delivery) = seam::register(&ctx, &registrations, req.email.trim()).await?;
    tracing::info!(user_id = user.id, "user registered");
    match (user, delivery) {
        (user, Delivery::Done(outcome)) => {
            let user =
                record_email_outcome(&mut *ctx.db.acquire().await?, user.id, &outcome).await?;
            Ok((StatusCode::CREATED, axum::Json(user)).into_response())
        }
        (user, Delivery::Accepted) => {
            Ok((StatusCode::ACCEPTED, axum::Json(with_status_url(user))).into_response())
        }
    }
}

/// A registration to store: its address and, in async mode, the welcome
/// email to send (its `user_id` set to the new id by the statement).
pub struct NewUser {
    pub email: String,
    pub welcome: Option<Outgoing>,
}

/// Stores new users in one statement that commits by itself (a batch of
/// them in async mode, [`seam`]); in async mode the same statement writes
/// each one's welcome email to the outbox. Each registration is answered
/// in order: its user, or a conflict when its address is taken (by a user
/// stored before or by an earlier one of the same batch).
async fn insert(ctx: &Ctx, batch: Vec<NewUser>) -> Result<Vec<Result<User>>> {
    let events = EventColumns::of(batch.iter().map(|u| u.welcome.as_ref()))?;
    let EventSql {
        unnest,
        names,
        sent,
    } = EventColumns::sql(&events, 2, "user_id", "email");
    // One row per address whatever its case, the first asked: the others
    // are conflicts, as they would be one statement later. Rows go in in
    // the order of the unique index, so that two batches sharing addresses
    // wait for each other rather than deadlock.
    let sql = format!(
        "WITH input AS (
             SELECT DISTINCT ON (lower(email)) *
             FROM unnest($1::text[]{unnest}) WITH ORDINALITY AS i(email{names}, n)
             ORDER BY lower(email), n
         ), new AS (
             INSERT INTO users (email) SELECT email FROM input ORDER BY lower(email)
             ON CONFLICT DO NOTHING RETURNING {COLUMNS}
         ){sent}
         SELECT * FROM new"
    );
    let emails: Vec<&str> = batch.iter().map(|u| u.email.as_str()).collect();
    let mut query = sqlx::query_as(&sql).bind(emails);
    if let Some(events) = events {
        query = events.bind(query);
    }
    let stored: Vec<User> = query.fetch_all(&ctx.db).await?;
    let mut stored: std::collections::HashMap<String, User> =
        stored.into_iter().map(|u| (u.email.clone(), u)).collect();
    Ok(batch
        .into_iter()
        .map(|NewUser { email, .. }| {
            stored.remove(&email).ok_or_else(|| {
                Error::Conflict(format!("a user with email {email} is already registered"))
            })
        })
        .collect())
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
    let user = sqlx::query_as(&format!(
        "UPDATE users SET email_status = $2, email_sent_at = $3, email_error = $4 WHERE id = $1
         RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(status)
    .bind(sent_at)
    .bind(error)
    .fetch_one(conn)
    .await?;
    Ok(user)
}

/// A user and the state of their welcome email.
#[utoipa::path(get, path = "/users/{id}", tag = "user",
    params(("id" = i64, Path, description = "The user's id.")),
    responses(
        (status = 200, description = "The user.", body = User),
        (status = 404, description = "No user has this id.", body = ErrorBody),
    ),
)]
async fn get_user(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<i64>,
) -> Result<axum::Json<User>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(&ctx.db)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Error::not_found(format!("user {id}")))
}
