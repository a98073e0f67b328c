//! Cache service: a key/value cache whose product entries are dropped when a
//! product changes (scenario 3).

mod seam;

use axum::Router;
use axum::extract::State;
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::ProductChanged;
use common::{Background, Ctx, Error, JsonBody, PathParam, QueryParams, Result, ServiceDef};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::CACHE,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(invalidate_handler))
        .routes(routes!(invalidations))
        .routes(routes!(get_entry, put_entry))
}

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::CACHE, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

/// The cache key of a product.
pub fn product_key(product_id: i64) -> String {
    format!("product:{product_id}")
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Invalidation {
    pub id: i64,
    pub product_id: i64,
    pub key: String,
    pub entry_existed: bool,
    pub invalidated_at: DateTime<Utc>,
}

/// Drops a changed product's entry and logs it (sync mode's fan-out calls it;
/// also served in async mode).
#[utoipa::path(post, path = "/invalidate", tag = "cache",
    request_body = ProductChanged,
    responses((status = 200, description = "Invalidated, after `CACHE_DELAY_MS`.", body = Invalidation)),
)]
async fn invalidate_handler(
    State(ctx): State<Ctx>,
    JsonBody(change): JsonBody<ProductChanged>,
) -> Result<axum::Json<Invalidation>> {
    Ok(axum::Json(INVALIDATE.answer(&ctx, change).await?))
}

/// Drops the product's entry and logs it after the simulated cost
/// (`CACHE_DELAY_MS`): the `/invalidate` route (sync) and the
/// `cache.product-changed` consumer (async).
pub static INVALIDATE: Interaction<ProductChanged, Invalidation> = Interaction {
    delay: |settings| settings.delays.cache,
    effect: |conn, change| Box::pin(async move { drop_entry(conn, &change).await }),
    reply: None,
    completes: Some("product_update"),
};

/// The record of [`INVALIDATE`].
async fn drop_entry<'e>(
    db: impl sqlx::PgExecutor<'e>,
    change: &ProductChanged,
) -> Result<Invalidation> {
    let key = product_key(change.product_id);
    let row = sqlx::query_as(
        "WITH dropped AS (DELETE FROM entries WHERE key = $2 RETURNING key)
         INSERT INTO invalidations (product_id, key, entry_existed)
         VALUES ($1, $2, EXISTS (SELECT 1 FROM dropped))
         RETURNING id, product_id, key, entry_existed, invalidated_at",
    )
    .bind(change.product_id)
    .bind(&key)
    .fetch_one(db)
    .await?;
    Ok(row)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InvalidationQuery {
    /// Only this product's invalidations.
    product_id: Option<i64>,
}

/// The invalidation log, newest first (at most 1000).
#[utoipa::path(get, path = "/invalidations", tag = "cache",
    params(InvalidationQuery),
    responses((status = 200, description = "The invalidations, newest first.", body = Vec<Invalidation>)),
)]
async fn invalidations(
    State(ctx): State<Ctx>,
    QueryParams(q): QueryParams<InvalidationQuery>,
) -> Result<axum::Json<Vec<Invalidation>>> {
    let rows = sqlx::query_as(
        "SELECT id, product_id, key, entry_existed, invalidated_at FROM invalidations
         WHERE $1::bigint IS NULL OR product_id = $1 ORDER BY id DESC LIMIT 1000",
    )
    .bind(q.product_id)
    .fetch_all(&ctx.db)
    .await?;
    Ok(axum::Json(rows))
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
struct Entry {
    key: String,
    /// Any JSON value.
    value: Value,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
struct PutEntry {
    /// Any JSON value.
    value: Value,
}

/// One cache entry.
#[utoipa::path(get, path = "/entries/{key}", tag = "cache",
    params(("key" = String, Path, description = "The entry's key, e.g. `product:1`.")),
    responses(
        (status = 200, description = "The entry.", body = Entry),
        (status = 404, description = "No entry has this key (a product's entry is dropped when it changes).", body = common::ErrorBody),
    ),
)]
async fn get_entry(
    State(ctx): State<Ctx>,
    PathParam(key): PathParam<String>,
) -> Result<axum::Json<Entry>> {
    sqlx::query_as("SELECT key, value, updated_at FROM entries WHERE key = $1")
        .bind(&key)
        .fetch_optional(&ctx.db)
        .await?
        .map(axum::Json)
        .ok_or_else(|| Error::not_found(format!("cache entry {key}")))
}

/// Sets an entry.
#[utoipa::path(put, path = "/entries/{key}", tag = "cache",
    params(("key" = String, Path, description = "The entry's key, at most 200 characters.")),
    request_body = PutEntry,
    responses(
        (status = 200, description = "The entry as stored.", body = Entry),
        (status = 422, description = "The key is longer than 200 characters.", body = common::ErrorBody),
    ),
)]
async fn put_entry(
    State(ctx): State<Ctx>,
    PathParam(key): PathParam<String>,
    JsonBody(req): JsonBody<PutEntry>,
) -> Result<axum::Json<Entry>> {
    if key.len() > 200 {
        return Err(Error::Invalid("key: at most 200 characters".into()));
    }
    let entry = sqlx::query_as(
        "INSERT INTO entries (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
         RETURNING key, value, updated_at",
    )
    .bind(&key)
    .bind(&req.value)
    .fetch_one(&ctx.db)
    .await?;
    Ok(axum::Json(entry))
}
