//! The load driver's shared parts: the six scenarios as a client sends them
//! (requests, expected answers, when an operation is finished) and latency
//! statistics. `lab-load` and the showdown page both drive the lab with them,
//! so both count the same answers as expected.

pub mod breakdown;
pub mod broker;
pub mod compare;
pub mod completion;
pub mod drive;
pub mod exposition;
pub mod fault;
pub mod floor;
pub mod reconcile;
pub mod scenario;
pub mod smoke;
pub mod stack;
pub mod stats;

/// `--mode` as the command lines take it.
pub fn parse_mode(s: &str) -> Result<common::Mode, String> {
    match s {
        "sync" => Ok(common::Mode::Sync),
        "async" => Ok(common::Mode::Async),
        _ => Err("sync or async".into()),
    }
}
