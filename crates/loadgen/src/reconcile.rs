//! After a load: did every operation it started reach a final state?
//!
//! Read from the stack's own records (its database, and its own count of the
//! answers it gave), not from the answers the driver read: a client that hung
//! up never learnt what it started, and that is exactly the work that must
//! not be left half done. Each scenario states its rule once, here.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};

use crate::scenario::Scenario;

/// What one scenario's records said, once settled or when the wait ran out.
#[derive(Debug, PartialEq)]
pub struct Verdict {
    /// Operations the stack recorded for this load.
    pub started: i64,
    /// Of those, not in a final state.
    pub unfinished: i64,
    /// Broken rules (stock held by a closed order, effects ≠ answers, ...).
    pub wrong: Vec<String>,
    /// Not broken rules, but what the figures measured besides the
    /// scenario's work (orders refused for lack of stock).
    pub remarks: Vec<String>,
    /// Effects recorded per second, from the load's start to the last one
    /// recorded (fan-out, clicks: the scenarios the driver cannot follow
    /// one by one): the pace at which the stack finished their work.
    pub pace: Option<f64>,
    /// The order saga: its payments settled per second from the first to
    /// the last, the pace of its slowest step (10 at a time, 2 s each),
    /// which its orders keep once the queues they share have drained (an
    /// order is final only after inventory has released or committed its
    /// unit, and that message waits behind every reservation queued before
    /// it, so after a burst the orders themselves finish late and together).
    pub step_pace: Option<f64>,
}

impl Verdict {
    pub fn holds(&self) -> bool {
        self.unfinished == 0 && self.wrong.is_empty()
    }

    pub fn describe(&self, scenario: Scenario) -> String {
        let what = match scenario {
            Scenario::Register => "users",
            Scenario::Payment => "payments",
            Scenario::Fanout => "updates logged",
            Scenario::Report => "jobs",
            Scenario::Order => "orders",
            Scenario::Click => "clicks stored",
        };
        let verdict = if self.holds() {
            format!(
                "reconciled: {} {what}, every one final (the stack's own records)",
                self.started
            )
        } else {
            let mut problems = Vec::new();
            if self.unfinished > 0 {
                problems.push(format!("{} not final", self.unfinished));
            }
            problems.extend(self.wrong.iter().cloned());
            format!(
                "NOT RECONCILED: {} {what}, {}",
                self.started,
                problems.join("; ")
            )
        };
        std::iter::once(verdict)
            .chain(self.remarks.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// A connection to the stack's database, and the moment (its clock) the load began.
pub struct Audit {
    url: String,
    db: PgConnection,
    since: DateTime<Utc>,
}

impl Audit {
    pub async fn begin(database_url: &str) -> anyhow::Result<Audit> {
        let mut db = PgConnection::connect(database_url).await?;
        let since = sqlx::query_scalar("SELECT now()")
            .fetch_one(&mut db)
            .await?;
        Ok(Audit {
            url: database_url.to_owned(),
            db,
            since,
        })
    }

    /// An audit of everything the stack holds, not only of one load's time.
    pub async fn everything(database_url: &str) -> anyhow::Result<Audit> {
        let db = PgConnection::connect(database_url).await?;
        Ok(Audit {
            url: database_url.to_owned(),
            db,
            since: DateTime::<Utc>::UNIX_EPOCH,
        })
    }

    /// Reads the records until the rule holds or `wait` has passed; a
    /// connection lost on the way (PostgreSQL restarted under the load) is
    /// made again.
    /// `counted`: for the scenarios whose stored effects must equal the
    /// stack's own count of 2xx answers (clicks, fan-out), read anew each
    /// time: requests whose clients hung up may still be running.
    pub async fn settle(
        &mut self,
        scenario: Scenario,
        run_id: &str,
        counted: Option<&Counted<'_>>,
        wait: Duration,
    ) -> anyhow::Result<Verdict> {
        let deadline = Instant::now() + wait;
        loop {
            let served = match counted {
                Some(counted) => counted.since_start().await,
                None => None,
            };
            match self.read(scenario, run_id, served).await {
                Ok(verdict) if verdict.holds() || Instant::now() >= deadline => {
                    return Ok(verdict);
                }
                Ok(_) => {}
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    if let Ok(db) = PgConnection::connect(&self.url).await {
                        self.db = db;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn read(
        &mut self,
        scenario: Scenario,
        run_id: &str,
        served: Option<i64>,
    ) -> anyhow::Result<Verdict> {
        let since = self.since;
        let db = &mut self.db;
        let (mut wrong, mut remarks) = (Vec::new(), Vec::new());
        let (mut pace, mut step_pace) = (None, None);
        let (started, unfinished): (i64, i64) = match scenario {
            Scenario::Register => {
                let pattern = format!("load-{run_id}-%");
                let (users, pending, emails): (i64, i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE email_status = 'pending'),
                            (SELECT count(*) FROM email_service.emails WHERE recipient LIKE $1)
                     FROM user_service.users WHERE email LIKE $1",
                )
                .bind(&pattern)
                .fetch_one(&mut *db)
                .await?;
                if emails > users {
                    wrong.push(format!("{emails} emails for {users} users"));
                }
                (users, pending)
            }
            Scenario::Payment => {
                sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'pending')
                     FROM payment_service.payments WHERE created_at >= $1",
                )
                .bind(since)
                .fetch_one(&mut *db)
                .await?
            }
            Scenario::Report => {
                sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE status IN ('queued', 'running'))
                     FROM report_service.jobs WHERE created_at >= $1",
                )
                .bind(since)
                .fetch_one(&mut *db)
                .await?
            }
            Scenario::Order => {
                let (orders, unfinished, no_stock): (i64, i64, i64) = sqlx::query_as(
                    "SELECT count(*), count(*) FILTER (WHERE status = 'pending' OR followup IS NOT NULL),
                            count(*) FILTER (WHERE failure_reason = $2)
                     FROM order_service.orders WHERE created_at >= $1",
                )
                .bind(since)
                .bind(common::messages::RefusalKind::NotEnoughStock.as_str())
                .fetch_one(&mut *db)
                .await?;
                if no_stock > 0 {
                    remarks.push(format!(
                        "{no_stock} of them refused for lack of stock (no saga: they finish at once)"
                    ));
                }
                let held: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM inventory_service.reservations r
                     JOIN order_service.orders o ON o.id = r.order_id
                     WHERE r.status = 'reserved' AND o.status <> 'pending'",
                )
                .fetch_one(&mut *db)
                .await?;
                if held > 0 {
                    wrong.push(format!("{held} reservations held by closed orders"));
                }
                // Only the load's own orders: whatever else a client sent
                // (a fuzzer), the payment API lets it pay for any order_id.
                let twice: i64 = if since == DateTime::<Utc>::UNIX_EPOCH {
                    0
                } else {
                    sqlx::query_scalar(
                        "SELECT count(*) FROM (
                       SELECT p.order_id FROM payment_service.payments p
                       JOIN order_service.orders o ON o.id = p.order_id
                       WHERE o.created_at >= $1
                       GROUP BY p.order_id HAVING count(*) > 1) AS charged",
                    )
                    .bind(since)
                    .fetch_one(&mut *db)
                    .await?
                };
                if twice > 0 {
                    wrong.push(format!("{twice} orders charged more than once"));
                }
                if since != DateTime::<Utc>::UNIX_EPOCH {
                    let (settled, first, last): (
                        i64,
                        Option<DateTime<Utc>>,
                        Option<DateTime<Utc>>,
                    ) = sqlx::query_as(
                        "SELECT count(*), min(p.completed_at), max(p.completed_at)
                             FROM payment_service.payments p
                             JOIN order_service.orders o ON o.id = p.order_id
                             WHERE o.created_at >= $1 AND p.completed_at IS NOT NULL",
                    )
                    .bind(since)
                    .fetch_one(&mut *db)
                    .await?;
                    step_pace = first
                        .zip(last)
                        .map(|(first, last)| (last - first).as_seconds_f64())
                        .filter(|seconds| *seconds > 0.0)
                        .map(|seconds| (settled - 1) as f64 / seconds);
                }
                let off: Vec<(i64, i32, i64)> = sqlx::query_as(
                    "SELECT s.product_id, s.reserved, coalesce(sum(r.quantity), 0)::bigint
                     FROM inventory_service.stock s
                     LEFT JOIN inventory_service.reservations r
                       ON r.product_id = s.product_id AND r.status = 'reserved'
                     GROUP BY s.product_id, s.reserved
                     HAVING s.reserved <> coalesce(sum(r.quantity), 0)",
                )
                .fetch_all(&mut *db)
                .await?;
                for (product, reserved, held) in off {
                    wrong.push(format!(
                        "product {product}: {reserved} reserved but reservations hold {held}"
                    ));
                }
                (orders, unfinished)
            }
            Scenario::Click | Scenario::Fanout => {
                let query = if scenario == Scenario::Click {
                    "SELECT count(*), max(clicked_at) FROM analytics_service.clicks
                     WHERE clicked_at >= $1"
                } else {
                    "SELECT count(*), max(logged_at) FROM analytics_service.product_updates
                     WHERE logged_at >= $1"
                };
                let (stored, last): (i64, Option<DateTime<Utc>>) = sqlx::query_as(query)
                    .bind(since)
                    .fetch_one(&mut *db)
                    .await?;
                // (An audit of everything has no load start to count from.)
                pace = last
                    .filter(|_| since != DateTime::<Utc>::UNIX_EPOCH)
                    .map(|last| (last - since).as_seconds_f64())
                    .filter(|seconds| *seconds > 0.0)
                    .map(|seconds| stored as f64 / seconds);
                let unfinished = match served {
                    Some(served) if stored > served => {
                        wrong.push(format!("{stored} stored for {served} answered 2xx"));
                        0
                    }
                    Some(served) => served - stored,
                    None => 0,
                };
                (stored, unfinished)
            }
        };
        Ok(Verdict {
            started,
            unfinished,
            wrong,
            remarks,
            pace,
            step_pace,
        })
    }
}

/// The stack's own count of 2xx answers on one route (from its `/metrics`),
/// whether or not the client stayed to read them, less those that stored
/// nothing by design (a click whose `Idempotency-Key` was stored already).
pub struct Counted<'a> {
    pub client: &'a reqwest::Client,
    /// Every instance of the service (`--replicas`): their counts add up.
    pub bases: &'a [String],
    pub route: &'static str,
    /// The count before the load.
    pub before: i64,
}

impl<'a> Counted<'a> {
    /// Reads the count before the load; `None` when a `/metrics` cannot be read.
    pub async fn start(
        client: &'a reqwest::Client,
        bases: &'a [String],
        route: &'static str,
    ) -> Option<Counted<'a>> {
        let before = served(client, bases, route).await?;
        Some(Counted {
            client,
            bases,
            route,
            before,
        })
    }

    async fn since_start(&self) -> Option<i64> {
        Some(served(self.client, self.bases, self.route).await? - self.before)
    }
}

/// 2xx answers on `route` that must have stored an effect: all of them but
/// the clicks a stored `Idempotency-Key` made a no-op, over every instance.
async fn served(client: &reqwest::Client, bases: &[String], route: &str) -> Option<i64> {
    let mut total = 0;
    for base in bases {
        let text = crate::exposition::scrape(client, base).await?;
        total += count_2xx(&text, route) - stored_nothing(&text);
    }
    Some(total)
}

/// Clicks answered 200 that stored nothing by design (their key was stored already).
fn stored_nothing(metrics: &str) -> i64 {
    crate::exposition::sum(metrics, common::metrics::CLICKS_DEDUPLICATED, |_| true) as i64
}

/// 2xx answers to `"<METHOD> <route>"` (`"PUT /products/{id}"`: not the GETs of the same route).
fn count_2xx(metrics: &str, route: &str) -> i64 {
    let (method, route) = route.split_once(' ').unwrap_or(("", route));
    let (method, route) = (format!("method=\"{method}\""), format!("route=\"{route}\""));
    crate::exposition::sum(metrics, "http_requests_total", |labels| {
        labels.contains(&route) && labels.contains(&method) && labels.contains("status=\"2")
    }) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_counts_its_own_2xx_answers_by_route() {
        let text = "\
# TYPE http_requests_total counter
http_requests_total{service=\"analytics\",mode=\"sync\",method=\"POST\",route=\"/track_click\",status=\"200\"} 120
http_requests_total{service=\"analytics\",mode=\"sync\",method=\"POST\",route=\"/track_click\",status=\"503\"} 7
http_requests_total{service=\"analytics\",mode=\"sync\",method=\"GET\",route=\"/clicks/stats\",status=\"200\"} 3
http_requests_total{service=\"product\",mode=\"sync\",method=\"GET\",route=\"/products/{id}\",status=\"200\"} 9
http_requests_total{service=\"product\",mode=\"sync\",method=\"PUT\",route=\"/products/{id}\",status=\"200\"} 4
";
        assert_eq!(count_2xx(text, "POST /track_click"), 120);
        assert_eq!(count_2xx(text, "GET /clicks/stats"), 3);
        assert_eq!(count_2xx(text, "PUT /products/{id}"), 4);
        assert_eq!(count_2xx(text, "DELETE /products/{id}"), 0);
        assert_eq!(stored_nothing(text), 0);
        let retried =
            format!("{text}clicks_deduplicated_total{{service=\"analytics\",mode=\"sync\"}} 5\n");
        assert_eq!(stored_nothing(&retried), 5);
    }

    #[test]
    fn a_verdict_names_what_is_left_and_what_is_wrong() {
        let fine = Verdict {
            started: 40,
            unfinished: 0,
            wrong: vec![],
            remarks: vec![],
            pace: None,
            step_pace: None,
        };
        assert!(fine.holds());
        assert_eq!(
            fine.describe(Scenario::Order),
            "reconciled: 40 orders, every one final (the stack's own records)"
        );
        let bad = Verdict {
            started: 40,
            unfinished: 2,
            wrong: vec!["3 reservations held by closed orders".into()],
            remarks: vec![],
            pace: None,
            step_pace: None,
        };
        assert!(!bad.holds());
        assert_eq!(
            bad.describe(Scenario::Order),
            "NOT RECONCILED: 40 orders, 2 not final; 3 reservations held by closed orders"
        );
        let refused = Verdict {
            remarks: vec!["38 of them refused for lack of stock".into()],
            ..fine
        };
        assert!(refused.holds(), "a remark is not a broken rule");
        assert_eq!(
            refused.describe(Scenario::Order),
            "reconciled: 40 orders, every one final (the stack's own records); 38 of them refused for lack of stock"
        );
    }
}
