//! Users and the default user: who may log in, and that the stored users survive restarts and
//! kill -9 while the start-up flags only seed a new data directory.

mod client;
mod common;

use client::Client;
use common::Broker;

/// True if `user`/`password` may open a connection to `vhost`.
async fn logs_in(broker: &Broker, user: &str, password: &str, vhost: &str) -> bool {
    match Client::connect_as(broker, user, password, vhost).await {
        Ok(client) => {
            client.assert_usable().await;
            let _ = client.connection.close().await;
            true
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_broker_has_guest_with_every_permission_on_the_default_vhost() {
    let broker = Broker::start(2);
    assert!(logs_in(&broker, "guest", "guest", "/").await);
    assert!(!logs_in(&broker, "guest", "wrong", "/").await);
    assert!(!logs_in(&broker, "nobody", "guest", "/").await);
    assert!(!logs_in(&broker, "guest", "guest", "no-such-vhost").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_user_flags_seed_only_a_new_data_directory() {
    let broker = Broker::start_with(2, &["--default-user", "admin", "--default-pass", "s3cret"]);
    assert!(logs_in(&broker, "admin", "s3cret", "/").await);
    assert!(!logs_in(&broker, "guest", "guest", "/").await);
    // Stored users win over the flags from then on, across kill -9 and a clean restart.
    let data_dir = broker.kill9();
    let broker = Broker::start_in_with(
        &data_dir,
        2,
        &["--default-user", "other", "--default-pass", "x"],
    );
    assert!(logs_in(&broker, "admin", "s3cret", "/").await);
    assert!(!logs_in(&broker, "other", "x", "/").await);
    assert!(!logs_in(&broker, "guest", "guest", "/").await);
    let broker = broker.restart();
    assert!(logs_in(&broker, "admin", "s3cret", "/").await);
}
