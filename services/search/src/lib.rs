//! Search service: keeps a full-text index of product names, fed by product
//! changes (scenario 3), and answers `GET /search?q=`.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use common::inbound::Interaction;
use common::messages::ProductChanged;
use common::{Background, Ctx, Error, JsonBody, QueryParams, Result, ServiceDef};
use serde::{Deserialize, Serialize};

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::SEARCH,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    Router::new()
        .route("/index", post(index_handler))
        .route("/search", get(search))
        .with_state(ctx)
}

#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow)]
pub struct Document {
    pub product_id: i64,
    pub name: String,
    pub indexed_at: DateTime<Utc>,
}

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

#[derive(Debug, Deserialize)]
struct SearchQuery {
    q: Option<String>,
}

#[derive(Debug, Serialize)]
struct SearchResults {
    query: String,
    count: usize,
    results: Vec<Document>,
}

/// Products whose name has words starting with every word of `q` (case-insensitive).
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
