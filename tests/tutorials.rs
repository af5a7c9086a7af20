//! The RabbitMQ tutorials (hello world, work queues, publish/subscribe, routing, topics, RPC)
//! plus basic.get and transactions, through amqprs against a 2-shard broker, with publisher
//! and consumer on different connections so every message crosses shards.

mod client;
mod common;

use std::collections::BTreeSet;

use amqprs::channel::{
    BasicAckArguments, BasicQosArguments, BasicRejectArguments, Channel, ExchangeDeclareArguments,
    QueueBindArguments, QueueDeclareArguments,
};
use amqprs::BasicProperties;
use client::{
    confirm_select, consume, declare, drain, get, publish, publish_with, within, Client, Deliveries,
};
use common::Broker;

async fn exchange(channel: &Channel, name: &str, kind: &str) {
    within(
        "exchange.declare",
        channel.exchange_declare(ExchangeDeclareArguments::new(name, kind)),
    )
    .await
    .expect("exchange.declare");
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) {
    within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new(queue, exchange, key)),
    )
    .await
    .expect("queue.bind");
}

async fn ack(channel: &Channel, delivery_tag: u64) {
    within(
        "basic.ack",
        channel.basic_ack(BasicAckArguments::new(delivery_tag, false)),
    )
    .await
    .expect("basic.ack");
}

#[tokio::test]
async fn hello_world() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let consumer = Client::connect(&broker).await;
    let (send, _) = producer.channel().await;
    let (receive, _) = consumer.channel().await;
    declare(&receive, QueueDeclareArguments::new("hello")).await;
    let mut deliveries = consume(&receive, "hello", true).await;
    declare(&send, QueueDeclareArguments::new("hello")).await;
    publish(&send, "", "hello", b"Hello World!").await;
    let delivery = deliveries.next().await;
    assert_eq!(delivery.body, b"Hello World!");
    assert_eq!(delivery.routing_key, "hello");
    assert!(!delivery.redelivered);
}

#[tokio::test]
async fn work_queues_share_persistent_tasks_between_prefetch_one_workers() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    let task_queue = QueueDeclareArguments::durable_client_named("task_queue");
    declare(&send, task_queue.clone()).await;
    let mut workers = Vec::new();
    for _ in 0..2 {
        let client = Client::connect(&broker).await;
        let (channel, events) = client.channel().await;
        declare(&channel, task_queue.clone()).await;
        within(
            "basic.qos",
            channel.basic_qos(BasicQosArguments::new(0, 1, false)),
        )
        .await
        .expect("basic.qos");
        let deliveries = consume(&channel, "task_queue", false).await;
        workers.push((client, channel, events, deliveries));
    }
    confirm_select(&send).await;
    let persistent = BasicProperties::default().with_persistence(true).finish();
    for n in 0..10 {
        publish_with(
            &send,
            "",
            "task_queue",
            persistent.clone(),
            format!("task {n}").as_bytes(),
        )
        .await;
    }
    events.confirmed(10).await;
    // Each worker holds one unacked task; prefetch 1 makes the broker give the next to the other.
    let mut done = BTreeSet::new();
    let mut held = Vec::new();
    for (_, _, _, deliveries) in workers.iter_mut() {
        let delivery = deliveries.next().await;
        assert_eq!(delivery.properties.delivery_mode(), Some(2), "persistent");
        held.push(delivery.delivery_tag);
        assert!(done.insert(String::from_utf8(delivery.body).expect("utf-8")));
    }
    // Prefetch 1: nothing more went out while both tasks are unacked.
    let (_, ready, _) = within(
        "passive declare",
        send.queue_declare(
            QueueDeclareArguments::new("task_queue")
                .passive(true)
                .finish(),
        ),
    )
    .await
    .expect("passive declare")
    .expect("declare-ok");
    assert_eq!(ready, 8, "ready messages while each worker holds one");
    for ((_, channel, _, _), tag) in workers.iter().zip(held) {
        ack(channel, tag).await;
    }
    // The rest, acking each as it arrives, whichever worker gets it.
    while done.len() < 10 {
        let (_, channel, _, deliveries) = &mut workers[done.len() % 2];
        let delivery = deliveries.next().await;
        ack(channel, delivery.delivery_tag).await;
        assert!(done.insert(String::from_utf8(delivery.body).expect("utf-8")));
    }
    let expected: BTreeSet<String> = (0..10).map(|n| format!("task {n}")).collect();
    assert_eq!(done, expected);
}

#[tokio::test]
async fn a_task_rejected_with_requeue_comes_back_redelivered() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let worker = Client::connect(&broker).await;
    let (send, _) = producer.channel().await;
    let (channel, _) = worker.channel().await;
    declare(
        &channel,
        QueueDeclareArguments::durable_client_named("tasks"),
    )
    .await;
    let mut deliveries = consume(&channel, "tasks", false).await;
    declare(&send, QueueDeclareArguments::durable_client_named("tasks")).await;
    publish(&send, "", "tasks", b"flaky").await;
    let first = deliveries.next().await;
    assert!(!first.redelivered);
    within(
        "basic.reject",
        channel.basic_reject(BasicRejectArguments::new(first.delivery_tag, true)),
    )
    .await
    .expect("basic.reject");
    let again = deliveries.next().await;
    assert_eq!(again.body, b"flaky");
    assert!(again.redelivered, "a requeued message is redelivered");
    assert!(again.delivery_tag > first.delivery_tag, "tags never repeat");
    ack(&channel, again.delivery_tag).await;
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_tasks_redelivered() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, _) = producer.channel().await;
    declare(&send, QueueDeclareArguments::durable_client_named("tasks")).await;
    let first_worker = Client::connect(&broker).await;
    let (channel, _) = first_worker.channel().await;
    declare(
        &channel,
        QueueDeclareArguments::durable_client_named("tasks"),
    )
    .await;
    let mut deliveries = consume(&channel, "tasks", false).await;
    for n in 0..3 {
        publish(&send, "", "tasks", format!("task {n}").as_bytes()).await;
    }
    assert_eq!(deliveries.bodies(3).await, ["task 0", "task 1", "task 2"]);
    within("channel.close", channel.close())
        .await
        .expect("channel.close");

    let second_worker = Client::connect(&broker).await;
    let (channel, _) = second_worker.channel().await;
    let mut deliveries = consume(&channel, "tasks", false).await;
    for n in 0..3 {
        let delivery = deliveries.next().await;
        assert_eq!(
            delivery.body,
            format!("task {n}").as_bytes(),
            "original order"
        );
        assert!(delivery.redelivered);
        ack(&channel, delivery.delivery_tag).await;
    }
}

#[tokio::test]
async fn publish_subscribe_fans_out_to_every_server_named_queue() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, _) = producer.channel().await;
    exchange(&send, "logs", "fanout").await;
    let mut subscribers: Vec<(Client, Channel, Deliveries)> = Vec::new();
    for _ in 0..2 {
        let client = Client::connect(&broker).await;
        let (channel, _) = client.channel().await;
        exchange(&channel, "logs", "fanout").await;
        let queue = declare(&channel, QueueDeclareArguments::exclusive_server_named()).await;
        assert!(queue.starts_with("amq.gen-"), "server-named: {queue}");
        assert_eq!(queue.len(), "amq.gen-".len() + 22, "{queue}");
        bind(&channel, &queue, "logs", "").await;
        let deliveries = consume(&channel, &queue, true).await;
        subscribers.push((client, channel, deliveries));
    }
    assert_ne!(subscribers[0].2.tag, "");
    for n in 0..5 {
        publish(&send, "logs", "ignored", format!("log {n}").as_bytes()).await;
    }
    let expected: Vec<String> = (0..5).map(|n| format!("log {n}")).collect();
    for (_, _, deliveries) in subscribers.iter_mut() {
        assert_eq!(deliveries.bodies(5).await, expected);
    }
}

#[tokio::test]
async fn routing_delivers_by_exact_key_including_one_key_on_two_queues() {
    let broker = Broker::start(2);
    let consumer = Client::connect(&broker).await;
    let (receive, _) = consumer.channel().await;
    exchange(&receive, "direct_logs", "direct").await;
    declare(&receive, QueueDeclareArguments::new("errors")).await;
    declare(&receive, QueueDeclareArguments::new("everything")).await;
    bind(&receive, "errors", "direct_logs", "error").await;
    for severity in ["info", "warning", "error"] {
        bind(&receive, "everything", "direct_logs", severity).await;
    }

    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    exchange(&send, "direct_logs", "direct").await;
    confirm_select(&send).await;
    for severity in ["info", "warning", "error", "debug", "Error"] {
        publish(&send, "direct_logs", severity, severity.as_bytes()).await;
    }
    events.confirmed(5).await;
    assert_eq!(drain(&receive, "errors").await, ["error"]);
    assert_eq!(
        drain(&receive, "everything").await,
        ["info", "warning", "error"]
    );
}

#[tokio::test]
async fn topics_route_by_pattern() {
    let broker = Broker::start(2);
    let consumer = Client::connect(&broker).await;
    let (receive, _) = consumer.channel().await;
    exchange(&receive, "topic_logs", "topic").await;
    for (queue, keys) in [
        ("q1", &["*.orange.*"][..]),
        ("q2", &["*.*.rabbit", "lazy.#"][..]),
        ("all", &["#"][..]),
    ] {
        declare(&receive, QueueDeclareArguments::new(queue)).await;
        for key in keys {
            bind(&receive, queue, "topic_logs", key).await;
        }
    }

    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    confirm_select(&send).await;
    let keys = [
        "quick.orange.rabbit",
        "lazy.orange.elephant",
        "quick.orange.fox",
        "lazy.brown.fox",
        "lazy.pink.rabbit",
        "quick.brown.fox",
        "orange",
        "quick.orange.male.rabbit",
        "lazy.orange.male.rabbit",
        "lazy",
        "",
    ];
    for key in keys {
        publish(&send, "topic_logs", key, key.as_bytes()).await;
    }
    events.confirmed(keys.len() as u64).await;
    assert_eq!(
        drain(&receive, "q1").await,
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox"
        ]
    );
    assert_eq!(
        drain(&receive, "q2").await,
        [
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "lazy.brown.fox",
            "lazy.pink.rabbit",
            "lazy.orange.male.rabbit",
            "lazy"
        ],
        "one copy even when two bindings match"
    );
    assert_eq!(drain(&receive, "all").await, keys, "# matches everything");
}

fn fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        fib(n - 1) + fib(n - 2)
    }
}

#[tokio::test]
async fn rpc_replies_to_the_callback_queue_with_the_correlation_id() {
    let broker = Broker::start(2);
    let server = Client::connect(&broker).await;
    let (server_channel, _) = server.channel().await;
    declare(&server_channel, QueueDeclareArguments::new("rpc_queue")).await;
    within(
        "basic.qos",
        server_channel.basic_qos(BasicQosArguments::new(0, 1, false)),
    )
    .await
    .expect("basic.qos");
    let mut requests = consume(&server_channel, "rpc_queue", false).await;
    let responder = tokio::spawn(async move {
        for _ in 0..3 {
            let request = requests.next().await;
            let n: u64 = String::from_utf8(request.body)
                .expect("utf-8")
                .parse()
                .expect("number");
            let reply_to = request.properties.reply_to().expect("reply_to").clone();
            let correlation_id = request.properties.correlation_id().expect("id").clone();
            let properties = BasicProperties::default()
                .with_correlation_id(&correlation_id)
                .finish();
            let answer = fib(n).to_string();
            publish_with(
                &server_channel,
                "",
                &reply_to,
                properties,
                answer.as_bytes(),
            )
            .await;
            ack(&server_channel, request.delivery_tag).await;
        }
        server_channel
    });

    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    let callback = declare(&channel, QueueDeclareArguments::exclusive_server_named()).await;
    let mut replies = consume(&channel, &callback, true).await;
    for (n, correlation_id) in [(10, "req-a"), (20, "req-b"), (1, "req-c")] {
        let properties = BasicProperties::default()
            .with_reply_to(&callback)
            .with_correlation_id(correlation_id)
            .finish();
        publish_with(
            &channel,
            "",
            "rpc_queue",
            properties,
            n.to_string().as_bytes(),
        )
        .await;
        let reply = replies.next().await;
        assert_eq!(
            reply.properties.correlation_id().map(String::as_str),
            Some(correlation_id)
        );
        assert_eq!(reply.body, fib(n).to_string().as_bytes());
    }
    within("responder", responder)
        .await
        .expect("responder task");
}

#[tokio::test]
async fn basic_get_reports_the_remaining_count_then_get_empty() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    declare(&send, QueueDeclareArguments::new("inbox")).await;
    confirm_select(&send).await;
    for body in ["a", "b", "c"] {
        publish(&send, "", "inbox", body.as_bytes()).await;
    }
    events.confirmed(3).await;

    let consumer = Client::connect(&broker).await;
    let (receive, _) = consumer.channel().await;
    let (_, count, _) = within(
        "passive declare",
        receive.queue_declare(QueueDeclareArguments::new("inbox").passive(true).finish()),
    )
    .await
    .expect("passive declare")
    .expect("declare-ok");
    assert_eq!(count, 3);
    for (body, remaining) in [("a", 2), ("b", 1), ("c", 0)] {
        let (get_ok, _, content) = get(&receive, "inbox", false).await.expect("get-ok");
        assert_eq!(content, body.as_bytes());
        assert_eq!(get_ok.message_count(), remaining);
        assert!(!get_ok.redelivered());
        ack(&receive, get_ok.delivery_tag()).await;
    }
    assert!(get(&receive, "inbox", false).await.is_none(), "get-empty");
}

#[tokio::test]
async fn a_transaction_delivers_publishes_only_on_commit() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, _) = producer.channel().await;
    declare(&send, QueueDeclareArguments::new("tx")).await;
    within("tx.select", send.tx_select())
        .await
        .expect("tx.select");
    publish(&send, "", "tx", b"rolled back").await;
    within("tx.rollback", send.tx_rollback())
        .await
        .expect("tx.rollback");
    publish(&send, "", "tx", b"committed").await;
    within("tx.commit", send.tx_commit())
        .await
        .expect("tx.commit");

    let consumer = Client::connect(&broker).await;
    let (receive, _) = consumer.channel().await;
    assert_eq!(drain(&receive, "tx").await, ["committed"]);
}

#[tokio::test]
async fn an_ack_inside_a_transaction_takes_effect_only_at_commit() {
    let broker = Broker::start(2);
    let producer = Client::connect(&broker).await;
    let (send, mut events) = producer.channel().await;
    declare(&send, QueueDeclareArguments::new("work")).await;
    confirm_select(&send).await;
    publish(&send, "", "work", b"job").await;
    events.confirmed(1).await;

    let consumer = Client::connect(&broker).await;
    // Ack, then roll back: the ack is undone, so closing the channel requeues the message.
    let (channel, _) = consumer.channel().await;
    within("tx.select", channel.tx_select())
        .await
        .expect("tx.select");
    let (get_ok, _, _) = get(&channel, "work", false).await.expect("get-ok");
    ack(&channel, get_ok.delivery_tag()).await;
    within("tx.rollback", channel.tx_rollback())
        .await
        .expect("tx.rollback");
    within("channel.close", channel.close())
        .await
        .expect("channel.close");

    // Ack, then commit: the message is gone even though the channel closes.
    let (channel, _) = consumer.channel().await;
    within("tx.select", channel.tx_select())
        .await
        .expect("tx.select");
    let (get_ok, _, body) = get(&channel, "work", false).await.expect("requeued");
    assert_eq!(body, b"job");
    assert!(get_ok.redelivered(), "the rolled-back ack left it unacked");
    ack(&channel, get_ok.delivery_tag()).await;
    within("tx.commit", channel.tx_commit())
        .await
        .expect("tx.commit");
    within("channel.close", channel.close())
        .await
        .expect("channel.close");

    let (channel, _) = consumer.channel().await;
    assert!(
        get(&channel, "work", false).await.is_none(),
        "acked at commit"
    );
}
