//! Real restarts under load, both modes, against real stacks of the debug
//! builds (target/debug, target/async/debug, which `scripts/test.sh` has
//! built by the time it runs this): payment, email, inventory and the order
//! service restarted through `lab up`'s control endpoint (SIGTERM, a new
//! process), the broker (`rabbitmqctl stop_app` / `start_app`) and
//! PostgreSQL (`pg_ctlcluster stop` / `start`), each in the middle of a
//! load of the scenario that crosses it (`lab-load fault`, small delays).
//!
//! What a user checks, counts not timings: sync answers fail only with the
//! contract's 503 (or a refused connection when the entry service itself is
//! gone) and are good again once the component is back; async accepts
//! through every fault but its own entry service's, and everything it
//! accepted finishes; in both, the records are final and nothing happened
//! twice (no user with two emails, no order charged twice, no stock held by
//! a closed order).
//!
//! Ignored by a plain `cargo test`: it needs the builds and the stacks'
//! ports, and it restarts the machine's RabbitMQ and PostgreSQL, so nothing
//! else may run beside it. `scripts/test.sh` runs it with `--ignored`,
//! one test at a time.

// A failed unwrap in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use common::Mode;
use loadgen::fault::{self, ALL, Fault, FaultReport, Plan, Trial};

/// `fault` restarted in the middle of 6 s of its scenario, on a fresh stack.
async fn restart(mode: Mode, fault: Fault) -> FaultReport {
    loadgen::stack::ports_free(mode).expect("the mode's ports are free");
    let infra = support::infra();
    let name = format!("lab_faults_{mode}_{}", std::process::id());
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let env: Vec<(String, String)> = [
        ("PAYMENT_DELAY_MS", "100"),
        ("EMAIL_DELAY_MS", "20"),
        ("RUST_LOG", "warn"),
    ]
    .iter()
    .map(|(k, v)| ((*k).into(), (*v).into()))
    .collect();
    let trial = Trial {
        bin: &support::bin(mode),
        mode,
        name: &name,
        env: &env,
        infra: &infra,
        log: &log,
        clients: 8,
        rate: None,
        duration: Duration::from_secs(6),
        drain_timeout: Duration::from_secs(60),
        plan: Plan {
            at: Duration::from_millis(1500),
            down: Duration::from_millis(1500),
        },
    };
    let report = fault::on_fresh_stack(&trial, fault)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    for line in report.summary().describe() {
        eprintln!("{line}");
    }
    report
}

/// The statuses and errors of the failed answers.
fn failed_with(report: &FaultReport) -> Vec<String> {
    report.failed().into_keys().collect()
}

#[tokio::test]
#[ignore = "needs the debug builds and the sync stack's ports; restarts RabbitMQ and PostgreSQL"]
async fn sync_fails_fast_with_503_while_a_component_is_away_and_loses_nothing() {
    for fault in ALL {
        let report = restart(Mode::Sync, fault).await;
        let name = fault.name();
        assert!(
            report.summary().holds(),
            "{name}: {:?}",
            report.summary().describe()
        );
        assert!(report.good() > 0, "{name}: good answers before and after");
        let failed = failed_with(&report);
        match fault {
            // The saga's call is refused: 503, its stock released.
            Fault::Service("payment" | "inventory") => {
                assert_eq!(failed, ["503"], "{name}");
            }
            // The entry service itself is gone: its port refuses.
            Fault::Service("order") => assert_eq!(failed, ["connection error"], "{name}"),
            // A registration is kept when its email cannot be sent (the
            // user learns it from email_status); sync uses no broker.
            Fault::Service("email") | Fault::Broker => {
                assert!(failed.is_empty(), "{name}: {failed:?}")
            }
            // Requests wait for a connection, and those that cannot get one answer 503.
            _ => assert!(failed.iter().all(|f| f == "503"), "{name}: {failed:?}"),
        }
    }
}

#[tokio::test]
#[ignore = "needs the debug builds and the async stack's ports; restarts RabbitMQ and PostgreSQL"]
async fn async_accepts_through_every_restart_and_finishes_all_it_accepted() {
    for fault in ALL {
        let report = restart(Mode::Async, fault).await;
        let name = fault.name();
        assert!(
            report.summary().holds(),
            "{name}: {:?}",
            report.summary().describe()
        );
        let completion = report.outcome.completion.as_ref().unwrap();
        assert!(completion.accepted > 0, "{name}");
        assert_eq!(
            completion.left, 0,
            "{name}: every accepted operation finished"
        );
        let failed = failed_with(&report);
        match fault {
            Fault::Service("order") => assert_eq!(failed, ["connection error"], "{name}"),
            // The request's one transaction (the order and its event) cannot commit.
            Fault::Postgres => assert!(failed.iter().all(|f| f == "503"), "{name}: {failed:?}"),
            // The work waits in its queue or outbox: nothing is refused.
            _ => assert!(failed.is_empty(), "{name}: {failed:?}"),
        }
    }
}
