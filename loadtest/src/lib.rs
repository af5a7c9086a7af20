//! hareperf: a load generator and benchmark reporter for AMQP 0-9-1 brokers (Hare, RabbitMQ).
//!
//! - `client`: a lean blocking AMQP client of its own on `hare-protocol`.
//! - `message_id`: the id and publish time stamped into every body.

pub mod cli;
pub mod client;
pub mod measure;
pub mod message_id;
pub mod report;
pub mod scenario;
pub mod worker;
