//! What the page says about each scenario: where the two modes fork in our
//! code, what each does, which service a person can stop to see coupling,
//! and which queues hold its work in async mode. Words only: every number on
//! the page is measured.

use loadgen::scenario::Scenario;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub number: usize,
    pub name: &'static str,
    pub title: &'static str,
    /// The service answering the scenario's request.
    pub service: &'static str,
    /// The dependency the Stop/Start buttons act on (none: nothing to couple to).
    pub downstream: Option<&'static str>,
    /// Async mode: the queues that hold this scenario's work.
    pub queues: &'static [&'static str],
    /// The file where our code forks between the modes.
    pub seam: &'static str,
    pub sync: &'static str,
    #[serde(rename = "async")]
    pub asynchronous: &'static str,
}

pub fn entry(scenario: Scenario) -> Entry {
    let (title, downstream, queues, seam, sync, asynchronous): (
        _,
        _,
        &'static [&'static str],
        _,
        _,
        _,
    ) = match scenario {
        Scenario::Register => (
            "Registration waits on an email",
            Some("email"),
            &["email.send", "user.email-sent"],
            "services/user/src/seam.rs",
            "The user service commits the user, then blocks a worker thread on POST /send to the \
             email service and answers 201 only once the email is sent. With email down the \
             answer still comes, saying the email failed.",
            "The user and a user.registered event commit in one transaction and the answer is 202 \
             at once. The email service consumes the event, sends, and publishes email.sent, which \
             marks the user sent: finished comes later than answered.",
        ),
        Scenario::Payment => (
            "A slow external payment",
            Some("payment"),
            &["payment.requests"],
            "services/payment/src/seam.rs",
            "The payment service stores the payment and blocks a worker thread on the simulated \
             external call; the answer (200) comes when the call does.",
            "The payment and a payment.requested event commit together and the answer is 202; a \
             payment worker makes the external call and settles the payment later.",
        ),
        Scenario::Fanout => (
            "Product update fan-out",
            Some("search"),
            &[
                "search.product-changed",
                "cache.product-changed",
                "analytics.product-changed",
            ],
            "services/product/src/seam.rs",
            "The product service commits the update, then calls search, cache and analytics one \
             after another, blocking on each; the answer waits for all three.",
            "The update and one product.changed event commit together and the answer is 200 at \
             once; search, cache and analytics each consume it from their own queue, in parallel.",
        ),
        Scenario::Report => (
            "A CPU-bound report",
            None,
            &["report.jobs"],
            "services/report/src/seam.rs",
            "The request itself does the hashing on a worker thread: the answer takes the CPU time, \
             and reports at once share the cores.",
            "The job is queued and the answer is 202; report workers hash at idle priority, so \
             requests take a core from them at once and reports finish when cores are free.",
        ),
        Scenario::Order => (
            "Order saga with compensation",
            Some("payment"),
            &["inventory.reservations", "payment.requests", "order.saga"],
            "services/order/src/seam.rs",
            "The order service orchestrates within the request: reserve stock, call payment \
             (declined by design), release the stock, answer 400 with the compensation. With \
             payment down the order fails at once: 503, stock released.",
            "The order and a stock.reserve event commit together and the answer is 202; inventory, \
             payment and the order's saga consumer move it on by events. With payment down the \
             orders wait in payment.requests and finish when it is back.",
        ),
        Scenario::Click => (
            "High-rate click ingestion",
            None,
            &["analytics.clicks"],
            "services/analytics/src/seam.rs",
            "Each click is answered 200 once its INSERT is committed (clicks arriving together \
             share one INSERT and its commit).",
            "Each click is answered 200 once the broker confirmed it (clicks arriving together \
             share a message); the consumer stores them in batches.",
        ),
    };
    Entry {
        number: scenario.number(),
        name: scenario.name(),
        title,
        service: scenario.service(),
        downstream,
        queues,
        seam,
        sync,
        asynchronous,
    }
}

/// The services with a database pool that a scenario's answer waits on in
/// `mode`: the one answering, and in sync mode those it calls before it
/// answers. An async click is answered once the broker confirms it: no pool.
pub fn answer_path(scenario: Scenario, mode: common::Mode) -> &'static [&'static str] {
    use common::Mode::{Async, Sync};
    match (scenario, mode) {
        (Scenario::Register, Sync) => &["user", "email"],
        (Scenario::Fanout, Sync) => &["product", "search", "cache", "analytics"],
        (Scenario::Order, Sync) => &["order", "inventory", "payment"],
        (Scenario::Click, Async) => &[],
        (Scenario::Register, Async) => &["user"],
        (Scenario::Fanout, Async) => &["product"],
        (Scenario::Order, Async) => &["order"],
        (Scenario::Payment, _) => &["payment"],
        (Scenario::Report, _) => &["report"],
        (Scenario::Click, Sync) => &["analytics"],
    }
}
