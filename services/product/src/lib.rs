//! Product service: the catalogue, and scenario 3's fan-out. After a product
//! is updated, search, cache and analytics hear of it through [`seam`]:
//! one after another in sync mode, by one event in async mode.

mod seam;

use axum::Router;
use axum::extract::State;
use chrono::{DateTime, Utc};
use common::messages::ProductChanged;
use common::{
    Background, Ctx, Delivery, Error, ErrorBody, JsonBody, PathParam, Result, ServiceDef,
};
use garde::Validate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use seam::FanoutCall;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::PRODUCT,
    migrator: &MIGRATOR,
    routes,
    consumers: &[],
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(list))
        .routes(routes!(get_product, update))
}

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::PRODUCT, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub price_cents: i64,
    pub stock: i32,
    pub updated_at: DateTime<Utc>,
}

/// A product as the service shows it.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `Product::body` builds
struct ProductView {
    #[serde(flatten)]
    product: Product,
    price: f64,
}

/// An updated product, after the sync fan-out: each call in order, and their sum.
#[cfg(not(feature = "async"))]
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `update` builds
struct ProductUpdated {
    #[serde(flatten)]
    product: ProductView,
    /// The calls to search, cache and analytics, one after another.
    fanout: Vec<FanoutCall>,
    /// The calls' durations added up.
    fanout_ms: f64,
}

/// An updated product whose change event is committed (async mode).
#[cfg(feature = "async")]
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `update` builds
struct ProductUpdated {
    #[serde(flatten)]
    product: ProductView,
    /// Always `queued`: search, cache and analytics consume the event.
    #[schema(example = "queued")]
    fanout: String,
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
#[derive(Debug, Deserialize, Validate, ToSchema)]
#[serde(deny_unknown_fields)]
struct Update {
    /// 1 to 200 characters, not blank.
    #[garde(inner(length(min = 1, max = 200)))]
    #[schema(min_length = 1, max_length = 200)]
    name: Option<String>,
    /// 0 or more.
    #[garde(inner(range(min = 0)))]
    #[schema(minimum = 0)]
    stock: Option<i32>,
    /// 0 to 1000000000.
    #[garde(inner(range(min = 0.0, max = 1e9)))]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    price: Option<f64>,
}

/// Scenario 3. 200 with the product; in sync mode also each fan-out call's
/// duration (the answer waited for all three, one after another).
#[cfg_attr(not(feature = "async"), utoipa::path(put, path = "/products/{id}", tag = "product",
    params(("id" = i64, Path, description = "The product's id.")),
    request_body = Update,
    responses(
        (status = 200, description = "Updated, after search, cache and analytics were called one after another; a failed call is `ok: false` and the next still made.", body = ProductUpdated),
        (status = 404, description = "No product has this id.", body = ErrorBody),
        (status = 422, description = "None of `name`, `stock`, `price` given, an unknown field, or a value out of range.", body = ErrorBody),
    ),
))]
#[cfg_attr(feature = "async", utoipa::path(put, path = "/products/{id}", tag = "product",
    params(("id" = i64, Path, description = "The product's id.")),
    request_body = Update,
    responses(
        (status = 200, description = "Updated, with its `product.changed` event committed (`fanout: \"queued\"`).", body = ProductUpdated),
        (status = 404, description = "No product has this id.", body = ErrorBody),
        (status = 422, description = "None of `name`, `stock`, `price` given, an unknown field, or a value out of range.", body = ErrorBody),
    ),
))]
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
    // One statement that commits by itself; in async mode it also writes the
    // `product.changed` event about the row it updated to the outbox.
    let send = common::events::sent(seam::EVENT.as_ref(), 5);
    let sql = format!(
        "WITH new AS (
             UPDATE products SET name = COALESCE($2, name), stock = COALESCE($3, stock),
                    price_cents = COALESCE($4, price_cents), updated_at = now()
             WHERE id = $1 RETURNING {COLUMNS}
         ){send}
         SELECT * FROM new"
    );
    let query = sqlx::query_as(&sql)
        .bind(id)
        .bind(name)
        .bind(req.stock)
        .bind(price_cents);
    let product: Product = common::events::bind_sent(query, seam::EVENT.as_ref())
        .fetch_optional(&ctx.db)
        .await?
        .ok_or_else(|| Error::not_found(format!("product {id}")))?;
    let mut body = product.body();
    match seam::announce_update(&ctx, &product).await? {
        Delivery::Done(calls) => {
            body["fanout_ms"] = json!(calls.iter().map(|c| c.duration_ms).sum::<f64>());
            body["fanout"] = json!(calls);
        }
        Delivery::Accepted => body["fanout"] = json!("queued"),
    }
    Ok(axum::Json(body))
}

/// One product.
#[utoipa::path(get, path = "/products/{id}", tag = "product",
    params(("id" = i64, Path, description = "The product's id.")),
    responses(
        (status = 200, description = "The product.", body = ProductView),
        (status = 404, description = "No product has this id.", body = ErrorBody),
    ),
)]
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

/// The catalogue, by id (at most 1000).
#[utoipa::path(get, path = "/products", tag = "product",
    responses((status = 200, description = "The products, by id.", body = Vec<ProductView>)),
)]
async fn list(State(ctx): State<Ctx>) -> Result<axum::Json<Vec<Value>>> {
    let products: Vec<Product> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM products ORDER BY id LIMIT 1000"
    ))
    .fetch_all(&ctx.db)
    .await?;
    Ok(axum::Json(products.iter().map(Product::body).collect()))
}
