//! Product service: the catalogue, and scenario 3's fan-out. After a product
//! is updated, search, cache and analytics hear of it through [`seam`]:
//! one after another in sync mode, by one event in async mode.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use common::messages::ProductChanged;
use common::{Background, Ctx, Delivery, Error, JsonBody, PathParam, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use seam::FanoutCall;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::PRODUCT,
    migrator: &MIGRATOR,
    routes,
    consumers: &[],
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(get_product).put(update))
        .with_state(ctx)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Product {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub price_cents: i64,
    pub stock: i32,
    pub updated_at: DateTime<Utc>,
}

impl Product {
    fn body(&self) -> Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        body["price"] = json!(self.price_cents as f64 / 100.0);
        body
    }

    pub fn changed(&self) -> ProductChanged {
        ProductChanged {
            product_id: self.id,
            name: self.name.clone(),
            stock: self.stock,
            price: self.price_cents as f64 / 100.0,
            updated_at: self.updated_at,
        }
    }
}

const COLUMNS: &str = "id, name, price_cents, stock, updated_at";

/// The seed's body is `{"name": ..., "stock": ...}`; any of the fields may be
/// given, at least one must be.
#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
struct Update {
    #[garde(inner(length(min = 1, max = 200)))]
    name: Option<String>,
    #[garde(inner(range(min = 0)))]
    stock: Option<i32>,
    #[garde(inner(range(min = 0.0, max = 1e9)))]
    price: Option<f64>,
}

/// Scenario 3. 200 with the product; in sync mode also each fan-out call's
/// duration (the answer waited for all three, one after another).
async fn update(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<i64>,
    JsonBody(req): JsonBody<Update>,
) -> Result<axum::Json<Value>> {
    req.validate()?;
    if req.name.is_none() && req.stock.is_none() && req.price.is_none() {
        return Err(Error::Invalid(
            "give at least one of name, stock, price".into(),
        ));
    }
    let name = req.name.as_deref().map(str::trim);
    if name == Some("") {
        return Err(Error::Invalid("name: must not be blank".into()));
    }
    let price_cents = req.price.map(|p| (p * 100.0).round() as i64);
    let mut tx = ctx.db.begin().await?;
    let product: Product = sqlx::query_as(&format!(
        "UPDATE products SET name = COALESCE($2, name), stock = COALESCE($3, stock),
                price_cents = COALESCE($4, price_cents), updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(name)
    .bind(req.stock)
    .bind(price_cents)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Error::not_found(format!("product {id}")))?;
    let mut body = product.body();
    match seam::announce_update(&ctx, tx, &product).await? {
        Delivery::Done(calls) => {
            body["fanout_ms"] = json!(calls.iter().map(|c| c.duration_ms).sum::<f64>());
            body["fanout"] = json!(calls);
        }
        Delivery::Accepted => body["fanout"] = json!("queued"),
    }
    Ok(axum::Json(body))
}

async fn get_product(
    State(ctx): State<Ctx>,
    PathParam(id): PathParam<i64>,
) -> Result<axum::Json<Value>> {
    sqlx::query_as::<_, Product>(&format!("SELECT {COLUMNS} FROM products WHERE id = $1"))
        .bind(id)
        .fetch_optional(&ctx.db)
        .await?
        .map(|p| axum::Json(p.body()))
        .ok_or_else(|| Error::not_found(format!("product {id}")))
}

async fn list(State(ctx): State<Ctx>) -> Result<axum::Json<Vec<Value>>> {
    let products: Vec<Product> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM products ORDER BY id LIMIT 1000"
    ))
    .fetch_all(&ctx.db)
    .await?;
    Ok(axum::Json(products.iter().map(Product::body).collect()))
}
