//! End-to-end tests of the lab in the mode it was built in. One binary, one
//! module per scenario, a fresh stack and database per test.

// A failed unwrap in a test helper is a failed test, which is what we want.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "async")]
mod async_faults;
#[cfg(feature = "async")]
mod async_scenarios;
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
