//! The long load and fault suite (`scripts/test --slow`): thousands of real connections against
//! the real binary, measured from outside. Each test prints its figures (RELIABILITY.md records
//! them) and asserts only what must hold on any machine: bounds, and ratios measured within the
//! same run, never absolute timings.

#[allow(dead_code)]
#[path = "../it/harness.rs"]
mod harness;

#[allow(dead_code)]
#[path = "../it/fault_round.rs"]
mod fault_round;

#[allow(dead_code)]
#[path = "../it/receiver.rs"]
mod receiver;

mod faults;
mod load;
mod measure;
mod webhooks;

/// The log backends (the shared harness names them).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    Redis,
}
