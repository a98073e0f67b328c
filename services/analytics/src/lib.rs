//! Analytics service: click ingestion (scenario 6) and the log of product
//! updates (scenario 3). How a click becomes durable is the mode's business,
//! in [`seam`].

mod seam;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::ProductChanged;
use common::{Background, Ctx, JsonBody, QueryParams, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::ANALYTICS,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The click path's shared part (async mode batches publishes) next to the context.
#[derive(Clone, axum::extract::FromRef)]
struct AppState {
    ctx: Ctx,
    clicks: seam::Clicks,
}

fn routes(ctx: Ctx, background: &mut Background) -> Router {
    let clicks = seam::Clicks::new(&ctx, background);
    Router::new()
        .route("/track_click", post(track_click))
        .route("/clicks/stats", get(click_stats))
        .route(
            "/product_updates",
            post(log_update_handler).get(list_updates),
        )
        .with_state(AppState { ctx, clicks })
}

#[derive(Debug, Clone, Serialize, Deserialize, Validate)]
pub struct Click {
    #[garde(range(min = 0))]
    pub user_id: i64,
    #[garde(length(min = 1, max = 200))]
    pub page: String,
}

/// Scenario 6: 200 `{"status": "tracked"}` once the click is durable.
async fn track_click(
    State(ctx): State<Ctx>,
    State(clicks): State<seam::Clicks>,
    JsonBody(click): JsonBody<Click>,
) -> Result<axum::Json<Value>> {
    click.validate()?;
    seam::record_click(&ctx, &clicks, click).await?;
    Ok(axum::Json(json!({ "status": "tracked" })))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ClickStats {
    pub total: i64,
    pub pages: BTreeMap<String, i64>,
}

async fn click_stats(State(ctx): State<Ctx>) -> Result<axum::Json<ClickStats>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT page, count(*) FROM clicks GROUP BY page")
            .fetch_all(&ctx.db)
            .await?;
    Ok(axum::Json(ClickStats {
        total: rows.iter().map(|(_, n)| n).sum(),
        pages: rows.into_iter().collect(),
    }))
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct ProductUpdate {
    pub id: i64,
    pub product_id: i64,
    pub name: String,
    pub stock: i32,
    pub logged_at: DateTime<Utc>,
}

async fn log_update_handler(
    State(ctx): State<Ctx>,
    JsonBody(change): JsonBody<ProductChanged>,
) -> Result<axum::Json<ProductUpdate>> {
    Ok(axum::Json(LOG_UPDATE.answer(&ctx, change).await?))
}

/// Logs a product update after the simulated cost (`ANALYTICS_DELAY_MS`): the
/// `/product_updates` route (sync) and the `analytics.product-changed`
/// consumer (async).
pub static LOG_UPDATE: Interaction<ProductChanged, ProductUpdate> = Interaction {
    delay: |settings| settings.delays.analytics,
    effect: |conn, change| Box::pin(async move { store_update(conn, &change).await }),
    reply: None,
    completes: Some("product_update"),
};

/// The record of [`LOG_UPDATE`].
async fn store_update<'e>(
    db: impl sqlx::PgExecutor<'e>,
    change: &ProductChanged,
) -> Result<ProductUpdate> {
    let row = sqlx::query_as(
        "INSERT INTO product_updates (product_id, name, stock) VALUES ($1, $2, $3)
         RETURNING id, product_id, name, stock, logged_at",
    )
    .bind(change.product_id)
    .bind(&change.name)
    .bind(change.stock)
    .fetch_one(db)
    .await?;
    Ok(row)
}

#[derive(Debug, Deserialize)]
struct UpdatesQuery {
    product_id: Option<i64>,
}

async fn list_updates(
    State(ctx): State<Ctx>,
    QueryParams(q): QueryParams<UpdatesQuery>,
) -> Result<axum::Json<Vec<ProductUpdate>>> {
    let rows = sqlx::query_as(
        "SELECT id, product_id, name, stock, logged_at FROM product_updates
         WHERE $1::bigint IS NULL OR product_id = $1 ORDER BY id DESC LIMIT 1000",
    )
    .bind(q.product_id)
    .fetch_all(&ctx.db)
    .await?;
    Ok(axum::Json(rows))
}
