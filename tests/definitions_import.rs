//! `--load-definitions`: a definitions file exported by RabbitMQ (users with RabbitMQ's own
//! password hashes, vhosts, permissions, policies, queues, exchanges, bindings) is imported at
//! start, works at once, and what it created is durable without the file.

mod client;
mod common;

use std::path::PathBuf;

use client::{publish, until_ready, Client};
use common::Broker;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rabbitmq-definitions.json")
}

/// alice (password from RabbitMQ's hash) publishes through the imported topic exchange and
/// binding into the imported queue of the imported vhost.
async fn imported_objects_route(broker: &Broker, body: &str) {
    let client = Client::connect_as(broker, "alice", "wonderland", "shop")
        .await
        .expect("alice logs in to shop");
    let (channel, _events) = client.channel().await;
    publish(&channel, "shop.events", "order.created", body.as_bytes()).await;
    let _ = client.connection.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rabbitmq_export_is_imported_at_start_and_stays_without_the_file() {
    let path = fixture();
    let path = path.to_str().expect("utf-8 path");
    let broker = Broker::start_with(2, &["--load-definitions", path]);
    imported_objects_route(&broker, "one").await;
    assert!(Client::connect_as(&broker, "alice", "wrong", "shop")
        .await
        .is_err());
    // alice has no permission on "/".
    assert!(Client::connect_as(&broker, "alice", "wonderland", "/")
        .await
        .is_err());
    let guest = Client::connect(&broker).await;
    drop(guest);

    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    imported_objects_route(&broker, "two").await;
    let alice = Client::connect_as(&broker, "alice", "wonderland", "shop")
        .await
        .expect("alice logs in after kill -9");
    let (channel, _events) = alice.channel().await;
    // "one" was transient and died with the broker; "two" came through the recovered binding.
    until_ready(&channel, "orders", 1).await;
}

#[test]
fn a_malformed_definitions_file_stops_the_start() {
    let data_dir = common::fresh_data_dir();
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let file = data_dir.join("bad.json");
    std::fs::write(&file, b"{\"users\": [{\"name\": 1}]}").expect("write");
    let (status, stderr) = Broker::start_failure_with(
        &data_dir,
        1,
        &["--load-definitions", file.to_str().expect("utf-8")],
    );
    assert!(!status.success());
    assert!(
        stderr.contains("cannot load definitions"),
        "stderr: {stderr}"
    );
}
