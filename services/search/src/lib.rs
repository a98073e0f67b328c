//! Search service: keeps a full-text index of product names, fed by product
//! changes (scenario 3), and answers `GET /search?q=`.

mod seam;

use axum::Router;
use axum::extract::State;
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::ProductChanged;
use common::{Background, Ctx, Error, JsonBody, QueryParams, Result, ServiceDef};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::SEARCH,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(index_handler))
        .routes(routes!(search))
}

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::SEARCH, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Document {
    pub product_id: i64,
    pub name: String,
    pub indexed_at: DateTime<Utc>,
}

/// Re-indexes a changed product (sync mode's fan-out calls it; also served in async mode).
#[utoipa::path(post, path = "/index", tag = "search",
    request_body = ProductChanged,
    responses((status = 200, description = "Indexed, after `SEARCH_DELAY_MS`.", body = Document)),
)]
async fn index_handler(
    State(ctx): State<Ctx>,
    JsonBody(change): JsonBody<ProductChanged>,
) -> Result<axum::Json<Document>> {
    Ok(axum::Json(INDEX.answer(&ctx, change).await?))
}

/// Re-indexes a product after the simulated indexing cost (`SEARCH_DELAY_MS`):
/// the `/index` route (sync) and the `search.product-changed` consumer (async).
pub static INDEX: Interaction<ProductChanged, Document> = Interaction {
    delay: |settings| settings.delays.search,
    effect: |conn, change| Box::pin(async move { store(conn, &change).await }),
    reply: None,
    completes: Some("product_update"),
};

/// The record of [`INDEX`].
async fn store<'e>(db: impl sqlx::PgExecutor<'e>, change: &ProductChanged) -> Result<Document> {
    let row = sqlx::query_as(
        "INSERT INTO documents (product_id, name) VALUES ($1, $2)
         ON CONFLICT (product_id) DO UPDATE SET name = EXCLUDED.name, indexed_at = now()
         RETURNING product_id, name, indexed_at",
    )
    .bind(change.product_id)
    .bind(&change.name)
    .fetch_one(db)
    .await?;
    Ok(row)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// One to ten words (at most 200 characters); each matches the start of a word.
    q: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
struct SearchResults {
    query: String,
    count: usize,
    results: Vec<Document>,
}

/// Products whose name has words starting with every word of `q` (case-insensitive).
#[utoipa::path(get, path = "/search", tag = "search",
    params(SearchQuery),
    responses(
        (status = 200, description = "The matching products, by id (at most 100).", body = SearchResults),
        (status = 422, description = "`q` is missing, has no word, or is longer than 200 characters.", body = common::ErrorBody),
    ),
)]
async fn search(
    State(ctx): State<Ctx>,
    QueryParams(query): QueryParams<SearchQuery>,
) -> Result<axum::Json<SearchResults>> {
    let q = query.q.unwrap_or_default();
    let words: Vec<String> = q
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(10)
        .map(|w| format!("{}:*", w.to_lowercase()))
        .collect();
    if words.is_empty() || q.len() > 200 {
        return Err(Error::Invalid(
            "q: give one to ten words (at most 200 characters)".into(),
        ));
    }
    let results: Vec<Document> = sqlx::query_as(
        "SELECT product_id, name, indexed_at FROM documents
         WHERE words @@ to_tsquery('simple', $1) ORDER BY product_id LIMIT 100",
    )
    .bind(words.join(" & "))
    .fetch_all(&ctx.db)
    .await?;
    Ok(axum::Json(SearchResults {
        query: q,
        count: results.len(),
        results,
    }))
}
