//! Inventory service: stock levels and the reservations of the order saga
//! (scenario 5). A reservation is one conditional UPDATE, so concurrent
//! orders can never oversell; releasing and committing are idempotent, so a
//! retried compensation returns exactly what was reserved, once.

mod seam;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use common::messages::{RefusalKind, Reservation, Reserve};
use common::{Background, Ctx, Error, ErrorBody, JsonBody, PathParam, Result, ServiceDef};
use garde::Validate;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub static SERVICE: ServiceDef = ServiceDef {
    spec: &common::services::INVENTORY,
    migrator: &MIGRATOR,
    routes,
    consumers: seam::CONSUMERS,
    openapi,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// The service's routes, each registered with its documentation.
fn api() -> OpenApiRouter<Ctx> {
    OpenApiRouter::default()
        .routes(routes!(reserve_handler))
        .routes(routes!(get_reservation))
        .routes(routes!(release_handler))
        .routes(routes!(commit_handler))
        .routes(routes!(get_stock, put_stock))
}

fn routes(ctx: Ctx, _: &mut Background) -> Router {
    let (router, _) = api().split_for_parts();
    router.with_state(ctx)
}

/// The service's OpenAPI document in this build's mode.
pub fn openapi() -> utoipa::openapi::OpenApi {
    common::openapi::document(&common::services::INVENTORY, api())
}

common::openapi_tests!(crate::SERVICE, crate::api());

/// A refused reservation or close.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the body `From<Refusal>` builds
struct Refused {
    /// Why, with the numbers (e.g. `not enough stock: 3 available`).
    detail: String,
    /// The kind of refusal; absent when the order already holds a different reservation.
    refusal: Option<RefusalKind>,
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    order_id: i64,
    product_id: Option<i64>,
    quantity: i32,
    status: String,
}

impl Row {
    fn view(self, released_quantity: i32) -> Reservation {
        Reservation {
            order_id: self.order_id,
            product_id: self.product_id,
            quantity: self.quantity,
            status: self.status,
            released_quantity,
        }
    }
}

/// Why a reservation was refused: the kind travels to the order saga in both
/// modes, the numbers only in the message.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    UnknownProduct,
    NotEnoughStock { available: i32 },
    OrderClosed { status: String },
}

impl Refusal {
    pub fn kind(&self) -> RefusalKind {
        match self {
            Refusal::UnknownProduct => RefusalKind::UnknownProduct,
            Refusal::NotEnoughStock { .. } => RefusalKind::NotEnoughStock,
            Refusal::OrderClosed { .. } => RefusalKind::OrderClosed,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownProduct => write!(f, "product not found in inventory"),
            Refusal::NotEnoughStock { available } => {
                write!(f, "not enough stock: {available} available")
            }
            Refusal::OrderClosed { status } => {
                write!(f, "the order's reservation is already {status}")
            }
        }
    }
}

/// 404 for an unknown product, 409 otherwise; `refusal` names the kind.
impl From<Refusal> for Error {
    fn from(r: Refusal) -> Self {
        let status = match r {
            Refusal::UnknownProduct => StatusCode::NOT_FOUND,
            _ => StatusCode::CONFLICT,
        };
        Error::Body {
            status,
            body: serde_json::json!({ "detail": r.to_string(), "refusal": r.kind() }),
        }
    }
}

/// A reservation made (or found, `false`), or refused and why.
pub type Reserved = std::result::Result<(Reservation, bool), Refusal>;

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct ReserveRequest {
    /// 1 or more; one reservation per order.
    #[garde(range(min = 1))]
    #[schema(minimum = 1)]
    order_id: i64,
    /// 1 or more.
    #[garde(range(min = 1))]
    #[schema(minimum = 1)]
    product_id: i64,
    /// 1 or more.
    #[garde(range(min = 1))]
    #[schema(minimum = 1)]
    quantity: i32,
}

/// Holds stock for an order (the saga's first step); asking again for the
/// same order returns its reservation.
#[utoipa::path(post, path = "/reservations", tag = "inventory",
    request_body = ReserveRequest,
    responses(
        (status = 201, description = "Reserved: the units left `available` for `reserved`.", body = Reservation),
        (status = 200, description = "The order already holds this reservation; nothing more is held.", body = Reservation),
        (status = 404, description = "No stock row for the product (`refusal: \"unknown_product\"`).", body = Refused),
        (status = 409, description = "Not enough stock (`not_enough_stock`), the order's reservation already released (`order_closed`), or the order already holds a different reservation (no `refusal`).", body = Refused),
        (status = 422, description = "An id or the quantity below 1.", body = ErrorBody),
    ),
)]
async fn reserve_handler(
    State(ctx): State<Ctx>,
    JsonBody(req): JsonBody<ReserveRequest>,
) -> Result<Response> {
    req.validate()?;
    let request = Reserve {
        order_id: req.order_id,
        product_id: req.product_id,
        quantity: req.quantity,
    };
    let (reservation, created) = reserve(&mut *ctx.db.acquire().await?, &request).await??;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(reservation)).into_response())
}

/// Holds `quantity` units for the order. Asking again for the same order
/// returns the existing reservation (`false`) instead of holding more.
///
/// One statement: it locks the product's stock row (so reservations of one
/// product take turns and `available` is the latest), claims the order's
/// reservation if there is enough, and takes the units if it claimed it. On
/// its own it commits by itself; in a consumer's transaction it is part of it.
///
/// The new stock is computed from the locked row (`product`), not from the
/// row the UPDATE finds: when the lock had to wait for a release, PostgreSQL
/// (15, here) computed `available - $3` from the row as it was before the
/// release and the CHECK refused a negative stock (reproduced by the test
/// `inventory::a_reservation_waiting_for_a_release_is_held_from_the_stock_it_left`).
pub async fn reserve(conn: &mut PgConnection, req: &Reserve) -> Result<Reserved> {
    let (available, claimed): (Option<i32>, bool) = sqlx::query_as(
        "WITH product AS (
             SELECT available, reserved FROM stock WHERE product_id = $2 FOR UPDATE
         ), claimed AS (
             INSERT INTO reservations (order_id, product_id, quantity, status)
             SELECT $1, $2, $3, 'reserved' FROM product WHERE available >= $3
             ON CONFLICT (order_id) DO NOTHING
             RETURNING order_id
         ), taken AS (
             UPDATE stock SET available = product.available - $3,
                              reserved = product.reserved + $3, updated_at = now()
             FROM product WHERE stock.product_id = $2 AND EXISTS (SELECT 1 FROM claimed)
         )
         SELECT (SELECT available FROM product), EXISTS (SELECT 1 FROM claimed)",
    )
    .bind(req.order_id)
    .bind(req.product_id)
    .bind(req.quantity)
    .fetch_one(&mut *conn)
    .await?;
    if claimed {
        tracing::info!(
            order_id = req.order_id,
            product_id = req.product_id,
            quantity = req.quantity,
            "stock reserved"
        );
        return Ok(Ok((
            Reservation {
                order_id: req.order_id,
                product_id: Some(req.product_id),
                quantity: req.quantity,
                status: "reserved".into(),
                released_quantity: 0,
            },
            true,
        )));
    }
    // Asked before (or released before it came): the order's row decides.
    if let Some(existing) = fetch(conn, req.order_id).await? {
        return match existing.status.as_str() {
            "reserved" | "committed"
                if existing.product_id == Some(req.product_id)
                    && existing.quantity == req.quantity =>
            {
                Ok(Ok((existing.view(0), false)))
            }
            "reserved" | "committed" => Err(Error::Conflict(
                "the order already holds a different reservation".into(),
            )),
            status => Ok(Err(Refusal::OrderClosed {
                status: status.to_owned(),
            })),
        };
    }
    Ok(Err(match available {
        None => Refusal::UnknownProduct,
        Some(available) => Refusal::NotEnoughStock { available },
    }))
}

async fn fetch(conn: &mut PgConnection, order_id: i64) -> Result<Option<Row>> {
    Ok(
        sqlx::query_as("SELECT order_id, product_id, quantity, status FROM reservations WHERE order_id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_optional(conn)
            .await?,
    )
}

/// Compensation: returns exactly what the order reserved, once; an order that
/// reserved nothing gets a tombstone, so a late reservation is refused.
#[utoipa::path(post, path = "/reservations/{order_id}/release", tag = "inventory",
    params(("order_id" = i64, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "Released (`released_quantity` is what this call returned to stock; 0 when asked again).", body = Reservation),
        (status = 409, description = "The reservation was committed (`refusal: \"order_closed\"`).", body = Refused),
    ),
)]
async fn release_handler(
    State(ctx): State<Ctx>,
    PathParam(order_id): PathParam<i64>,
) -> Result<axum::Json<Reservation>> {
    Ok(axum::Json(
        release(&mut *ctx.db.acquire().await?, order_id).await?,
    ))
}

/// The order is paid: the reserved units leave the stock for good. Idempotent.
#[utoipa::path(post, path = "/reservations/{order_id}/commit", tag = "inventory",
    params(("order_id" = i64, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "Committed (also when asked again).", body = Reservation),
        (status = 404, description = "The order holds no reservation.", body = ErrorBody),
        (status = 409, description = "The reservation was released (`refusal: \"order_closed\"`).", body = Refused),
    ),
)]
async fn commit_handler(
    State(ctx): State<Ctx>,
    PathParam(order_id): PathParam<i64>,
) -> Result<axum::Json<Reservation>> {
    Ok(axum::Json(
        commit(&mut *ctx.db.acquire().await?, order_id).await?,
    ))
}

/// Compensation: returns exactly what the order reserved, once. Releasing
/// twice, or an order that reserved nothing, returns nothing more.
pub async fn release(conn: &mut PgConnection, order_id: i64) -> Result<Reservation> {
    close(conn, order_id, Close::Release).await
}

/// The order is paid: the reserved units leave the stock for good. Idempotent.
pub async fn commit(conn: &mut PgConnection, order_id: i64) -> Result<Reservation> {
    close(conn, order_id, Close::Commit).await
}

/// The two ways a reservation ends.
#[derive(Clone, Copy)]
enum Close {
    /// The units go back to `available`.
    Release,
    /// The units leave the stock.
    Commit,
}

impl Close {
    fn status(self) -> &'static str {
        match self {
            Close::Release => "released",
            Close::Commit => "committed",
        }
    }
}

/// Ends an order's reservation one way, once: asking again answers the same,
/// asking the other way after it ended is refused.
///
/// One statement locks the order's reservation and, if it is `reserved`,
/// closes it and moves its units (on its own it commits by itself); only an
/// order that reserved nothing needs a second, for its tombstone.
async fn close(conn: &mut PgConnection, order_id: i64, how: Close) -> Result<Reservation> {
    let row: Option<(i64, Option<i64>, i32, String, bool)> = sqlx::query_as(
        "WITH held AS (
             SELECT order_id, product_id, quantity, status FROM reservations WHERE order_id = $1 FOR UPDATE
         ), closed AS (
             UPDATE reservations SET status = $2, updated_at = now()
             WHERE order_id = $1 AND status = 'reserved'
             RETURNING product_id, quantity
         ), moved AS (
             UPDATE stock SET available = available + CASE WHEN $3 THEN closed.quantity ELSE 0 END,
                              reserved = reserved - closed.quantity, updated_at = now()
             FROM closed WHERE stock.product_id = closed.product_id
         )
         SELECT order_id, product_id, quantity, status, EXISTS (SELECT 1 FROM closed) FROM held",
    )
    .bind(order_id)
    .bind(how.status())
    .bind(matches!(how, Close::Release))
    .fetch_optional(&mut *conn)
    .await?;
    let Some((order_id, product_id, quantity, status, closed)) = row else {
        return match how {
            Close::Commit => Err(Error::not_found(format!("reservation of order {order_id}"))),
            // Nothing reserved (yet): leave a tombstone so a late reservation is refused.
            Close::Release => {
                let tombstone: Row = sqlx::query_as(
                    "INSERT INTO reservations (order_id, quantity, status) VALUES ($1, 0, 'released')
                     ON CONFLICT (order_id) DO UPDATE SET updated_at = now()
                     RETURNING order_id, product_id, quantity, status",
                )
                .bind(order_id)
                .fetch_one(&mut *conn)
                .await?;
                Ok(tombstone.view(0))
            }
        };
    };
    let row = Row {
        order_id,
        product_id,
        quantity,
        status,
    };
    if !closed {
        return if row.status == how.status() {
            Ok(row.view(0))
        } else {
            Err(Refusal::OrderClosed { status: row.status }.into())
        };
    }
    tracing::info!(
        order_id,
        quantity,
        outcome = how.status(),
        "reservation closed"
    );
    let released = match how {
        Close::Release => quantity,
        Close::Commit => 0,
    };
    Ok(Row {
        status: how.status().into(),
        ..row
    }
    .view(released))
}

/// An order's reservation.
#[utoipa::path(get, path = "/reservations/{order_id}", tag = "inventory",
    params(("order_id" = i64, Path, description = "The order's id.")),
    responses(
        (status = 200, description = "The reservation (`reserved`, `committed` or `released`).", body = Reservation),
        (status = 404, description = "The order holds no reservation.", body = ErrorBody),
    ),
)]
async fn get_reservation(
    State(ctx): State<Ctx>,
    PathParam(order_id): PathParam<i64>,
) -> Result<axum::Json<Reservation>> {
    sqlx::query_as::<_, Row>(
        "SELECT order_id, product_id, quantity, status FROM reservations WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(&ctx.db)
    .await?
    .map(|r| axum::Json(r.view(0)))
    .ok_or_else(|| Error::not_found(format!("reservation of order {order_id}")))
}

#[derive(Debug, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Stock {
    pub product_id: i64,
    pub available: i32,
    pub reserved: i32,
    pub updated_at: DateTime<Utc>,
}

/// A product's stock: available and reserved units.
#[utoipa::path(get, path = "/stock/{product_id}", tag = "inventory",
    params(("product_id" = i64, Path, description = "The product's id.")),
    responses(
        (status = 200, description = "The stock.", body = Stock),
        (status = 404, description = "No stock row for the product.", body = ErrorBody),
    ),
)]
async fn get_stock(
    State(ctx): State<Ctx>,
    PathParam(product_id): PathParam<i64>,
) -> Result<axum::Json<Stock>> {
    sqlx::query_as(
        "SELECT product_id, available, reserved, updated_at FROM stock WHERE product_id = $1",
    )
    .bind(product_id)
    .fetch_optional(&ctx.db)
    .await?
    .map(axum::Json)
    .ok_or_else(|| Error::not_found(format!("stock of product {product_id}")))
}

#[derive(Debug, Deserialize, Validate, ToSchema)]
struct PutStock {
    /// 0 or more.
    #[garde(range(min = 0))]
    #[schema(minimum = 0)]
    available: i32,
}

/// Sets the units available for a product (creating its stock row): how a
/// user or a test prepares a scenario, e.g. 10 in stock for 50 orders.
#[utoipa::path(put, path = "/stock/{product_id}", tag = "inventory",
    params(("product_id" = i64, Path, description = "The product's id, 1 or more.")),
    request_body = PutStock,
    responses(
        (status = 200, description = "The stock as set.", body = Stock),
        (status = 422, description = "`available` below 0, or the product id below 1.", body = ErrorBody),
    ),
)]
async fn put_stock(
    State(ctx): State<Ctx>,
    PathParam(product_id): PathParam<i64>,
    JsonBody(req): JsonBody<PutStock>,
) -> Result<axum::Json<Stock>> {
    req.validate()?;
    if product_id < 1 {
        return Err(Error::Invalid("product_id: must be 1 or more".into()));
    }
    let stock = sqlx::query_as(
        "INSERT INTO stock (product_id, available) VALUES ($1, $2)
         ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, updated_at = now()
         RETURNING product_id, available, reserved, updated_at",
    )
    .bind(product_id)
    .bind(req.available)
    .fetch_one(&ctx.db)
    .await?;
    Ok(axum::Json(stock))
}
