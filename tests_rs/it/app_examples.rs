//! The Rust examples, compiled into the tests so their apps can be tested.
//!
//! Each example is its own crate with its own copy of `common`; here they share one binary.

#[allow(clippy::duplicate_mod, dead_code)]
#[path = "../../examples/aggregation.rs"]
pub mod aggregation;
#[allow(clippy::duplicate_mod, dead_code)]
#[path = "../../examples/fan_out.rs"]
pub mod fan_out;
#[allow(clippy::duplicate_mod, dead_code)]
#[path = "../../examples/forwarding.rs"]
pub mod forwarding;
