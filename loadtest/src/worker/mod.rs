//! The threads that make the load: producers, consumers and the publisher-confirm reader.
//!
//! - `producer`: batched, stamped publishes, optional rate and confirm window.
//! - `confirm_window`: the window of unconfirmed publishes and the reader thread settling it.
//! - `consumer`: in-place delivery parsing, stamp checks, multiple=true acks.
//! - `consumer_behaviour`: healthy, slow, flaky, never-ack and dropped consumers.
//! - `inspecting_consumer`: reads `x-death` (retry) or the delay in the body (delayed).
//! - `metadata`: durable queue declares, binds or deletes, one round trip at a time.

pub mod confirm_window;
pub mod consumer;
pub mod consumer_behaviour;
pub mod inspecting_consumer;
pub mod metadata;
pub mod producer;
