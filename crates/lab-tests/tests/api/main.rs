//! End-to-end tests of the lab in the mode it was built in. One binary, one
//! module per scenario, a fresh stack and database per test. Each scenario's
//! tests run in both modes, their expected answers from the load driver's
//! table (`loadgen::scenario::Scenario::expected`) and their final states
//! read through `Stack::finished`; what one mode has by nature (blocking
//! calls, the broker) is marked and says why.

// A failed unwrap in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "async")]
mod async_faults;
mod bad_clients;
mod bad_input;
mod clicks;
mod fanout;
mod hangup;
mod inventory;
mod ops;
mod payment;
mod registration;
mod report;
mod saga;
mod showdown;
