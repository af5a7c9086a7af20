//! Vhosts are separate namespaces: the same queue and exchange names in two vhosts are two
//! objects each, routing never crosses, and a durable queue of a created vhost keeps its
//! persistent messages across kill -9.

mod client;
mod common;

use amqprs::channel::QueueDeclareArguments;
use amqprs::channel::{BasicPublishArguments, ExchangeDeclareArguments, QueueBindArguments};
use amqprs::BasicProperties;
use client::{confirm_select, declare, drain, ready, until_ready, within, Client};
use common::Broker;

/// guest with every permission on "/", "a" and "b".
fn definitions(dir: &std::path::Path) -> String {
    let permission = |vhost: &str| {
        format!(r#"{{"user":"guest","vhost":"{vhost}","configure":".*","write":".*","read":".*"}}"#)
    };
    let json = format!(
        r#"{{"vhosts":[{{"name":"a"}},{{"name":"b"}}],"permissions":[{},{}]}}"#,
        permission("a"),
        permission("b")
    );
    let path = dir.join("vhosts.json");
    std::fs::write(&path, json).expect("write definitions");
    path.to_str().expect("utf-8").to_owned()
}

async fn channel_in(
    broker: &Broker,
    vhost: &str,
) -> (Client, amqprs::channel::Channel, client::Events) {
    let client = Client::connect_as(broker, "guest", "guest", vhost)
        .await
        .expect("guest logs in");
    let (channel, events) = client.channel().await;
    (client, channel, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_names_in_two_vhosts_are_separate_objects() {
    let dir = common::fresh_data_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let file = definitions(&dir);
    let broker = Broker::start_in_with(&dir, 2, &["--load-definitions", &file]);
    let (_a_client, a, mut a_events) = channel_in(&broker, "a").await;
    let (_b_client, b, _b_events) = channel_in(&broker, "b").await;
    for channel in [&a, &b] {
        declare(channel, QueueDeclareArguments::durable_client_named("q")).await;
        let exchange = ExchangeDeclareArguments::new("x", "fanout")
            .durable(true)
            .finish();
        within("exchange.declare", channel.exchange_declare(exchange))
            .await
            .expect("exchange.declare");
        within(
            "queue.bind",
            channel.queue_bind(QueueBindArguments::new("q", "x", "")),
        )
        .await
        .expect("queue.bind");
    }
    confirm_select(&a).await;
    let persistent = BasicProperties::default().with_delivery_mode(2).finish();
    for body in ["one", "two"] {
        within(
            "publish",
            a.basic_publish(
                persistent.clone(),
                body.as_bytes().to_vec(),
                BasicPublishArguments::new("x", ""),
            ),
        )
        .await
        .expect("publish");
    }
    a_events.confirmed(2).await;
    until_ready(&a, "q", 2).await;
    assert_eq!(ready(&b, "q").await, 0, "b's q got a's messages");
    // The default exchange of "b" does not reach "a"'s queue either.
    client::publish(&b, "", "q", b"three").await;
    until_ready(&b, "q", 1).await;
    assert_eq!(ready(&a, "q").await, 2);

    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    let (_a_client, a, _a_events) = channel_in(&broker, "a").await;
    let (_b_client, b, _b_events) = channel_in(&broker, "b").await;
    assert_eq!(drain(&a, "q").await, vec!["one", "two"]);
    // "three" was transient: gone with the broker, and never in "a".
    assert_eq!(ready(&b, "q").await, 0);
}
