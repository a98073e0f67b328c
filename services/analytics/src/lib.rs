//! Analytics service: click ingestion (scenario 6) and the log of product
//! updates (scenario 3). Clicks are written in batches (a group commit,
//! [`common::batch`]); what makes a batch durable is the mode's business, in
//! [`seam`].

mod seam;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use chrono::{DateTime, Utc};
use common::batch::{Batching, GroupCommit};
use common::inbound::Interaction;
use common::messages::ProductChanged;
use common::{Background, Ctx, Error, JsonBody, QueryParams, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::ANALYTICS,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The click batcher next to the context.
#[derive(Clone, axum::extract::FromRef)]
struct AppState {
    ctx: Ctx,
    clicks: Clicks,
}

/// Clicks, written in shared batches.
type Clicks = GroupCommit<Keyed, ()>;

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(track_click))
        .routes(routes!(click_stats))
        .routes(routes!(log_update_handler, list_updates))
}

fn routes(ctx: Ctx, background: &mut Background) -> Router {
    let batching = Batching {
        name: "click batcher",
        max: usize::from(ctx.settings.click_batch_size),
        in_flight: seam::in_flight(&ctx.settings),
        unreachable: seam::UNREACHABLE,
    };
    let clicks = GroupCommit::new(&ctx, background, batching, |ctx, clicks: Vec<Keyed>| {
        let n = clicks.len();
        async move {
            seam::flush(&ctx, clicks).await?;
            Ok((0..n).map(|_| Ok(())).collect())
        }
    });
    let (router, _) = api().split_for_parts();
    router.with_state(AppState { ctx, clicks })
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::ANALYTICS, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Clone, Serialize, Deserialize, Validate, ToSchema)]
pub struct Click {
    /// 0 or more.
    #[garde(range(min = 0))]
    #[schema(minimum = 0)]
    pub user_id: i64,
    /// 1 to 200 characters.
    #[garde(length(min = 1, max = 200))]
    #[schema(min_length = 1, max_length = 200)]
    pub page: String,
}

/// The `Idempotency-Key` header of a click: a client that retries a click
/// whose answer it did not get, or got as 503 (the click may have been stored
/// all the same), sends the key again and the click is stored once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A key is 1 to 255 visible ASCII characters (a UUID is the usual choice).
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
    match key {
        Some(key) => Ok(Some(key.to_owned())),
        None => Err(Error::Invalid(
            "Idempotency-Key: 1 to 255 visible ASCII characters".into(),
        )),
    }
}

/// The header as the OpenAPI document shows it.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // documents the header `idempotency_key` reads
struct IdempotencyKey {
    /// Optional: the same key on a retry stores the click once (1 to 255
    /// visible ASCII characters, e.g. a UUID).
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,255}$")]
    idempotency_key: Option<String>,
}

/// The answer to a tracked click: `{"status": "tracked"}`.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `track_click` builds
struct Tracked {
    /// Always `tracked`.
    #[schema(example = "tracked")]
    status: String,
}

/// Scenario 6: 200 `{"status": "tracked"}` once the click is durable.
#[cfg_attr(not(feature = "async"), utoipa::path(post, path = "/track_click", tag = "analytics",
    request_body = Click,
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Tracked: the INSERT of the click's batch is committed (or was, under the same Idempotency-Key).", body = Tracked),
        (status = 422, description = "`user_id` is negative, `page` is empty or longer than 200 characters, or the Idempotency-Key is not 1 to 255 visible ASCII characters.", body = common::ErrorBody),
    ),
))]
#[cfg_attr(feature = "async", utoipa::path(post, path = "/track_click", tag = "analytics",
    request_body = Click,
    params(IdempotencyKey),
    responses(
        (status = 200, description = "Tracked: the broker confirmed the click's message; a consumer stores it in a batch (once per Idempotency-Key).", body = Tracked),
        (status = 422, description = "`user_id` is negative, `page` is empty or longer than 200 characters, or the Idempotency-Key is not 1 to 255 visible ASCII characters.", body = common::ErrorBody),
        (status = 503, description = "The broker did not confirm the click (unreachable, or the service is stopping). If the connection broke after the click was sent and did not come back within 5 s, the click may still be stored: retry with the same Idempotency-Key.", body = common::ErrorBody),
    ),
))]
async fn track_click(
    State(clicks): State<Clicks>,
    headers: axum::http::HeaderMap,
    JsonBody(click): JsonBody<Click>,
) -> Result<axum::Json<Value>> {
    click.validate()?;
    let key = idempotency_key(&headers)?;
    clicks.join(Keyed { click, key }).await?;
    Ok(axum::Json(json!({ "status": "tracked" })))
}

/// A click and its `Idempotency-Key`, as a batch carries it.
#[derive(Serialize, Deserialize)]
struct Keyed {
    #[serde(flatten)]
    click: Click,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// Stores a batch of clicks in one INSERT; a key already stored (a retried
/// click) stores nothing more. Returns how many were stored.
async fn insert_clicks<'e>(db: impl sqlx::PgExecutor<'e>, clicks: &[Keyed]) -> Result<u64> {
    let (mut users, mut pages, mut keys) = (
        Vec::with_capacity(clicks.len()),
        Vec::with_capacity(clicks.len()),
        Vec::with_capacity(clicks.len()),
    );
    for Keyed { click, key } in clicks {
        users.push(click.user_id);
        pages.push(click.page.as_str());
        keys.push(key.as_deref());
    }
    let stored = sqlx::query(
        "INSERT INTO clicks (user_id, page, idempotency_key)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[])
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&users)
    .bind(&pages)
    .bind(&keys)
    .execute(db)
    .await?
    .rows_affected();
    Ok(stored)
}

/// Counts clicks answered 200 that stored nothing because their
/// `Idempotency-Key` was stored already (a retried click), so that clicks
/// stored = clicks answered 200 − these, whatever a client sent.
fn deduplicated(ctx: &Ctx, clicks: u64) {
    if clicks > 0 {
        metrics::counter!(common::metrics::CLICKS_DEDUPLICATED, "service" => ctx.name(), "mode" => common::MODE.as_str())
            .increment(clicks);
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClickStats {
    /// Clicks stored.
    pub total: i64,
    /// Clicks stored, by page.
    pub pages: BTreeMap<String, i64>,
}

/// How many clicks are stored, in all and by page.
#[utoipa::path(get, path = "/clicks/stats", tag = "analytics",
    responses((status = 200, description = "The counts.", body = ClickStats)),
)]
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

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct ProductUpdate {
    pub id: i64,
    pub product_id: i64,
    pub name: String,
    pub stock: i32,
    pub logged_at: DateTime<Utc>,
}

/// Logs a product update (sync mode's fan-out calls it; also served in async mode).
#[utoipa::path(post, path = "/product_updates", tag = "analytics",
    request_body = ProductChanged,
    responses((status = 200, description = "Logged, after `ANALYTICS_DELAY_MS`.", body = ProductUpdate)),
)]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct UpdatesQuery {
    /// Only this product's updates.
    product_id: Option<i64>,
}

/// The log of product updates, newest first (at most 1000).
#[utoipa::path(get, path = "/product_updates", tag = "analytics",
    params(UpdatesQuery),
    responses((status = 200, description = "The updates, newest first.", body = Vec<ProductUpdate>)),
)]
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
