//! Connection-level (hard) errors, channel errors of the tx/confirm modes, server-sent
//! basic.cancel, and the operations RabbitMQ makes idempotent, as an amqprs client sees them
//! (docs/rabbitmq-compatibility.md §3-§8, §14). A hard error closes only its own connection.

mod client;
mod common;

use std::future::Future;

use amqprs::channel::{
    BasicCancelArguments, BasicConsumeArguments, BasicQosArguments, ExchangeDeleteArguments,
    QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments, QueueUnbindArguments,
};
use client::{consume, declare, publish, within, Client, Event};
use common::Broker;

/// Runs `operation` until the server's connection.close arrives (the operation may fail
/// first, or never answer), and checks the close.
async fn expect_connection_close<T>(
    client: &mut Client,
    operation: impl Future<Output = T>,
    code: u16,
    text_prefix: &str,
) {
    let close = client.expect_close(code, text_prefix);
    tokio::pin!(close);
    tokio::pin!(operation);
    tokio::select! {
        _ = &mut operation => close.await,
        () = &mut close => {}
    }
}

/// A broker and two connections: the one that will fail, and a bystander opened before.
async fn two_connections() -> (Broker, Client, Client) {
    let broker = Broker::start(2);
    let failing = Client::connect(&broker).await;
    let bystander = Client::connect(&broker).await;
    (broker, failing, bystander)
}

#[tokio::test]
async fn reusing_a_consumer_tag_on_a_channel_closes_the_connection_530() {
    let (_broker, mut client, bystander) = two_connections().await;
    let (channel, _) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("q")).await;
    let args = BasicConsumeArguments::new("q", "dup");
    let _first = within("basic.consume", channel.basic_consume_rx(args.clone()))
        .await
        .expect("first consume");
    expect_connection_close(
        &mut client,
        channel.basic_consume_rx(args),
        530,
        "NOT_ALLOWED - attempt to reuse consumer tag 'dup'",
    )
    .await;
    bystander.assert_usable().await;
}

#[tokio::test]
async fn qos_with_a_prefetch_size_closes_the_connection_540() {
    let (_broker, mut client, bystander) = two_connections().await;
    let (channel, _) = client.channel().await;
    expect_connection_close(
        &mut client,
        channel.basic_qos(BasicQosArguments::new(1024, 10, false)),
        540,
        "NOT_IMPLEMENTED - ",
    )
    .await;
    bystander.assert_usable().await;
}

#[tokio::test]
async fn channel_flow_inactive_closes_the_connection_540() {
    let (_broker, mut client, bystander) = two_connections().await;
    let (channel, _) = client.channel().await;
    expect_connection_close(&mut client, channel.flow(false), 540, "NOT_IMPLEMENTED - ").await;
    bystander.assert_usable().await;
}

#[tokio::test]
async fn recover_without_requeue_closes_the_connection_540() {
    let (_broker, mut client, bystander) = two_connections().await;
    let (channel, _) = client.channel().await;
    expect_connection_close(
        &mut client,
        channel.basic_recover(false),
        540,
        "NOT_IMPLEMENTED - ",
    )
    .await;
    bystander.assert_usable().await;
}

#[tokio::test]
async fn tx_commit_or_rollback_without_tx_select_is_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    assert!(within("tx.commit", channel.tx_commit()).await.is_err());
    events
        .expect_close(406, "PRECONDITION_FAILED - channel is not transactional")
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    assert!(within("tx.rollback", channel.tx_rollback()).await.is_err());
    events
        .expect_close(406, "PRECONDITION_FAILED - channel is not transactional")
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn mixing_tx_and_confirm_modes_is_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    within("tx.select", channel.tx_select())
        .await
        .expect("tx.select");
    assert!(
        within("confirm.select", channel.confirm_select(Default::default()))
            .await
            .is_err()
    );
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
        )
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    within("confirm.select", channel.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
    assert!(within("tx.select", channel.tx_select()).await.is_err());
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
        )
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn deleting_a_consumed_queue_from_another_connection_cancels_the_consumer() {
    let broker = Broker::start(2);
    let consumer = Client::connect(&broker).await;
    let (channel, mut events) = consumer.channel().await;
    declare(&channel, QueueDeclareArguments::new("doomed")).await;
    let mut deliveries = consume(&channel, "doomed", false).await;

    let deleter = Client::connect(&broker).await;
    let (other, _) = deleter.channel().await;
    within(
        "queue.delete",
        other.queue_delete(QueueDeleteArguments::new("doomed")),
    )
    .await
    .expect("queue.delete")
    .expect("delete-ok");

    assert_eq!(
        events.next().await,
        Event::Cancelled(deliveries.tag.clone())
    );
    deliveries.ended().await;
    // The channel itself stays open and usable.
    assert!(channel.is_open());
    let queue = declare(&channel, QueueDeclareArguments::exclusive_server_named()).await;
    publish(&channel, "", &queue, b"after cancel").await;
    let mut deliveries = consume(&channel, &queue, true).await;
    assert_eq!(deliveries.next().await.body, b"after cancel");
}

#[tokio::test]
async fn idempotent_operations_succeed_and_keep_the_channel_open() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("q")).await;

    let tag = within(
        "basic.cancel",
        channel.basic_cancel(BasicCancelArguments::new("no-such-consumer")),
    )
    .await
    .expect("cancel of an unknown tag");
    assert_eq!(tag, "no-such-consumer");
    let count = within(
        "queue.delete",
        channel.queue_delete(QueueDeleteArguments::new("missing")),
    )
    .await
    .expect("delete of a missing queue");
    assert_eq!(count, Some(0));
    within(
        "exchange.delete",
        channel.exchange_delete(ExchangeDeleteArguments::new("missing")),
    )
    .await
    .expect("delete of a missing exchange");
    within(
        "queue.unbind",
        channel.queue_unbind(QueueUnbindArguments::new("q", "amq.direct", "never-bound")),
    )
    .await
    .expect("unbind of a missing binding");
    within(
        "queue.unbind",
        channel.queue_unbind(QueueUnbindArguments::new("missing", "amq.direct", "k")),
    )
    .await
    .expect("unbind from a missing queue");
    for _ in 0..2 {
        within(
            "queue.bind",
            channel.queue_bind(QueueBindArguments::new("q", "amq.direct", "twice")),
        )
        .await
        .expect("re-adding a binding");
    }
    assert!(within("channel.flow", channel.flow(true))
        .await
        .expect("flow active=true"));
    for _ in 0..2 {
        within("tx.select", channel.tx_select())
            .await
            .expect("tx.select");
    }
    // Still open: a transactional publish through the twice-made binding arrives once.
    publish(&channel, "amq.direct", "twice", b"once").await;
    within("tx.commit", channel.tx_commit())
        .await
        .expect("tx.commit");
    let mut deliveries = consume(&channel, "q", true).await;
    assert_eq!(deliveries.next().await.body, b"once");

    let (channel, mut events) = client.channel().await;
    for _ in 0..2 {
        within("confirm.select", channel.confirm_select(Default::default()))
            .await
            .expect("confirm.select");
    }
    publish(&channel, "", "q", b"confirmed").await;
    events.confirmed(1).await;
}
