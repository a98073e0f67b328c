//! How the product service tells search, cache and analytics that a product
//! changed: the only place in this service where the mode forks.

#[cfg(not(feature = "async"))]
use std::time::Instant;

use common::events::About;
#[cfg(not(feature = "async"))]
use common::messages::ProductChanged;
use common::{Ctx, Delivery, Result};
use serde::Serialize;

use crate::Product;

/// One blocking call of the sync fan-out, as the answer reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FanoutCall {
    pub service: String,
    pub ok: bool,
    pub duration_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The three consumers of a product change, in the seed's order.
#[cfg(not(feature = "async"))]
const TARGETS: [(&str, &str); 3] = [
    ("search", "/index"),
    ("cache", "/invalidate"),
    ("analytics", "/product_updates"),
];

/// Sync: the update's statement writes no event.
#[cfg(not(feature = "async"))]
pub const EVENT: Option<About> = None;

/// Sync: the update has committed by itself; call search, cache and analytics one after another on
/// one worker thread, each blocking until answered. A failed call is reported
/// and the next one still made: each target's work is independent.
#[cfg(not(feature = "async"))]
pub async fn announce_update(ctx: &Ctx, product: &Product) -> Result<Delivery<Vec<FanoutCall>>> {
    let outbound = ctx.outbound.clone();
    let event: ProductChanged = product.changed();
    let urls: Vec<(&'static str, String)> = TARGETS
        .iter()
        .map(|(s, path)| (*s, ctx.url(s, path)))
        .collect();
    let calls = ctx
        .workers
        .run(move || {
            urls.iter()
                .map(|(service, url)| {
                    let start = Instant::now();
                    let answer = outbound.post::<_, serde_json::Value>(service, url, &event);
                    FanoutCall {
                        service: (*service).to_owned(),
                        ok: answer.is_ok(),
                        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
                        error: answer.err().map(|e| e.to_string()),
                    }
                })
                .collect()
        })
        .await?;
    Ok(Delivery::Done(calls))
}

/// Async: the update's own statement writes one `product.changed` event:
/// [`Product::changed`](crate::Product::changed) built in SQL from the row it
/// updated. The test `fanout::the_event_of_an_update_is_the_product_as_updated`
/// holds the two to the same fields and values.
#[cfg(feature = "async")]
pub const EVENT: Option<About> = Some(About {
    kind: "product.changed",
    payload: "jsonb_build_object('product_id', new.id, 'name', new.name, 'stock', new.stock,
                  'price', new.price_cents::float8 / 100, 'updated_at', new.updated_at)",
    accepted_at: "updated_at",
});

/// Async: the event committed with the update; search, cache and analytics
/// each consume it from their own queue, in parallel.
#[cfg(feature = "async")]
pub async fn announce_update(ctx: &Ctx, _: &Product) -> Result<Delivery<Vec<FanoutCall>>> {
    ctx.bus.wake_relay();
    Ok(Delivery::Accepted)
}
