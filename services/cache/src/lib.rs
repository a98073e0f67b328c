//! Cache service: a key/value cache whose product entries are dropped when a
//! product changes (scenario 3).

mod seam;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::ProductChanged;
use common::{Background, Ctx, Error, JsonBody, PathParam, QueryParams, Result, ServiceDef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::CACHE,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    Router::new()
        .route("/invalidate", post(invalidate_handler))
        .route("/invalidations", get(invalidations))
        .route("/entries/{key}", get(get_entry).put(put_entry))
        .with_state(ctx)
}

/// The cache key of a product.
pub fn product_key(product_id: i64) -> String {
    format!("product:{product_id}")
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Invalidation {
    pub id: i64,
    pub product_id: i64,
    pub key: String,
    pub entry_existed: bool,
    pub invalidated_at: DateTime<Utc>,
}

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

#[derive(Debug, Deserialize)]
struct InvalidationQuery {
    product_id: Option<i64>,
}

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

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow)]
struct Entry {
    key: String,
    value: Value,
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct PutEntry {
    value: Value,
}

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
