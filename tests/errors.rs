//! Channel-level (soft) errors as an amqprs client sees them: the channel.close reply code and
//! RabbitMQ's reply text, and that the connection keeps working (docs/rabbitmq-compatibility.md §4, §9, §10).

mod client;
mod common;

use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicGetArguments, ExchangeDeclareArguments,
    ExchangeDeleteArguments, QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
};
use amqprs::FieldValue;
use client::{consume, declare, get, publish, table, within, Client};
use common::Broker;

#[tokio::test]
async fn passive_declare_of_a_missing_queue_or_exchange_is_404() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;

    let (channel, mut events) = client.channel().await;
    let passive = QueueDeclareArguments::new("missing").passive(true).finish();
    let result = within("passive queue.declare", channel.queue_declare(passive)).await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(404, "NOT_FOUND - no queue 'missing' in vhost '/'")
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    let passive = ExchangeDeclareArguments::new("missing", "direct")
        .passive(true)
        .finish();
    let result = within(
        "passive exchange.declare",
        channel.exchange_declare(passive),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    events
        .expect_close(404, "NOT_FOUND - no exchange 'missing' in vhost '/'")
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn inequivalent_redeclares_are_406_with_rabbitmq_text() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("q")).await;
    let durable = QueueDeclareArguments::durable_client_named("q");
    assert!(within("queue.declare", channel.queue_declare(durable))
        .await
        .is_err());
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': \
             received 'true' but current is 'false'",
        )
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    within(
        "exchange.declare",
        channel.exchange_declare(ExchangeDeclareArguments::new("x", "direct")),
    )
    .await
    .expect("exchange.declare");
    let fanout = ExchangeDeclareArguments::new("x", "fanout");
    assert!(within("exchange.declare", channel.exchange_declare(fanout))
        .await
        .is_err());
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': \
             received 'fanout' but current is 'direct'",
        )
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn an_exclusive_queue_is_locked_to_other_connections() {
    let broker = Broker::start(2);
    let owner = Client::connect(&broker).await;
    let (owner_channel, _) = owner.channel().await;
    let exclusive = QueueDeclareArguments::new("mine").exclusive(true).finish();
    declare(&owner_channel, exclusive).await;
    let locked =
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'mine' in vhost '/'";

    let other = Client::connect(&broker).await;
    let (channel, mut events) = other.channel().await;
    let passive = QueueDeclareArguments::new("mine").passive(true).finish();
    assert!(within("passive declare", channel.queue_declare(passive))
        .await
        .is_err());
    events.expect_close(405, locked).await;

    let (channel, mut events) = other.channel().await;
    let result = within(
        "basic.get",
        channel.basic_get(BasicGetArguments::new("mine")),
    )
    .await;
    assert!(result.is_err(), "{result:?}");
    events.expect_close(405, locked).await;

    let (channel, mut events) = other.channel().await;
    let args = BasicConsumeArguments::new("mine", "");
    assert!(within("basic.consume", channel.basic_consume_rx(args))
        .await
        .is_err());
    events.expect_close(405, locked).await;

    let (channel, mut events) = other.channel().await;
    let delete = QueueDeleteArguments::new("mine");
    assert!(within("queue.delete", channel.queue_delete(delete))
        .await
        .is_err());
    events.expect_close(405, locked).await;
    other.assert_usable().await;

    // The owner is unaffected.
    publish(&owner_channel, "", "mine", b"still mine").await;
    let mut deliveries = consume(&owner_channel, "mine", true).await;
    assert_eq!(deliveries.next().await.body, b"still mine");
}

#[tokio::test]
async fn creating_amq_prefixed_names_is_403() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;

    let (channel, mut events) = client.channel().await;
    assert!(within(
        "queue.declare",
        channel.queue_declare(QueueDeclareArguments::new("amq.foo"))
    )
    .await
    .is_err());
    events
        .expect_close(
            403,
            "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'",
        )
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    assert!(within(
        "exchange.declare",
        channel.exchange_declare(ExchangeDeclareArguments::new("amq.foo", "direct"))
    )
    .await
    .is_err());
    events
        .expect_close(
            403,
            "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'",
        )
        .await;
    client.assert_usable().await;

    // Deleting a pre-declared amq.* exchange is refused too.
    let (channel, mut events) = client.channel().await;
    assert!(within(
        "exchange.delete",
        channel.exchange_delete(ExchangeDeleteArguments::new("amq.direct"))
    )
    .await
    .is_err());
    events.expect_close(403, "ACCESS_REFUSED - ").await;
    client.assert_usable().await;
}

#[tokio::test]
async fn the_default_exchange_cannot_be_declared_deleted_or_bound() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let refused = "ACCESS_REFUSED - operation not permitted on the default exchange";
    {
        let (channel, _) = client.channel().await;
        declare(&channel, QueueDeclareArguments::new("q")).await;
    }
    let (channel, mut events) = client.channel().await;
    let default_exchange = ExchangeDeclareArguments::new("", "direct");
    assert!(within(
        "exchange.declare",
        channel.exchange_declare(default_exchange)
    )
    .await
    .is_err());
    events.expect_close(403, refused).await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    let passive = ExchangeDeclareArguments::new("", "direct")
        .passive(true)
        .finish();
    assert!(
        within("exchange.declare", channel.exchange_declare(passive))
            .await
            .is_err()
    );
    events.expect_close(403, refused).await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    assert!(within(
        "exchange.delete",
        channel.exchange_delete(ExchangeDeleteArguments::new(""))
    )
    .await
    .is_err());
    events.expect_close(403, refused).await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    assert!(within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new("q", "", "q"))
    )
    .await
    .is_err());
    events.expect_close(403, refused).await;
    client.assert_usable().await;
}

#[tokio::test]
async fn publishing_to_a_missing_exchange_closes_the_channel_asynchronously() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    publish(&channel, "nope", "key", b"lost").await;
    events
        .expect_close(404, "NOT_FOUND - no exchange 'nope' in vhost '/'")
        .await;
    assert!(!channel.is_open());
    client.assert_usable().await;
}

#[tokio::test]
async fn publishing_to_an_internal_exchange_is_403() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let internal = ExchangeDeclareArguments::new("inner", "fanout")
        .internal(true)
        .finish();
    within("exchange.declare", channel.exchange_declare(internal))
        .await
        .expect("exchange.declare");
    publish(&channel, "inner", "", b"refused").await;
    events
        .expect_close(
            403,
            "ACCESS_REFUSED - cannot publish to internal exchange 'inner' in vhost '/'",
        )
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn an_unknown_exchange_type_is_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    let bogus = ExchangeDeclareArguments::new("x", "x-bogus");
    assert!(within("exchange.declare", channel.exchange_declare(bogus))
        .await
        .is_err());
    events
        .expect_close(406, "PRECONDITION_FAILED - unknown exchange type 'x-bogus'")
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn acking_an_unknown_or_settled_delivery_tag_is_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("q")).await;
    publish(&channel, "", "q", b"once").await;
    let message = within("basic.get", async {
        loop {
            if let Some(message) = get(&channel, "q", false).await {
                return message;
            }
        }
    })
    .await;
    let tag = message.0.delivery_tag();
    for _ in 0..2 {
        within(
            "basic.ack",
            channel.basic_ack(BasicAckArguments::new(tag, false)),
        )
        .await
        .expect("basic.ack");
    }
    events
        .expect_close(
            406,
            &format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
        )
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    within(
        "basic.ack",
        channel.basic_ack(BasicAckArguments::new(42, false)),
    )
    .await
    .expect("basic.ack");
    events
        .expect_close(406, "PRECONDITION_FAILED - unknown delivery tag 42")
        .await;
    client.assert_usable().await;

    // A no-ack delivery has nothing to ack.
    let (channel, mut events) = client.channel().await;
    publish(&channel, "", "q", b"no-ack").await;
    let message = within("basic.get", async {
        loop {
            if let Some(message) = get(&channel, "q", true).await {
                return message;
            }
        }
    })
    .await;
    let tag = message.0.delivery_tag();
    within(
        "basic.ack",
        channel.basic_ack(BasicAckArguments::new(tag, false)),
    )
    .await
    .expect("basic.ack");
    events
        .expect_close(
            406,
            &format!("PRECONDITION_FAILED - unknown delivery tag {tag}"),
        )
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn conditional_deletes_that_fail_are_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (setup, _) = client.channel().await;
    declare(&setup, QueueDeclareArguments::new("busy")).await;
    let _deliveries = consume(&setup, "busy", false).await;
    declare(&setup, QueueDeclareArguments::new("full")).await;
    publish(&setup, "", "full", b"content").await;

    let (channel, mut events) = client.channel().await;
    let if_unused = QueueDeleteArguments::new("busy").if_unused(true).finish();
    assert!(within("queue.delete", channel.queue_delete(if_unused))
        .await
        .is_err());
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - queue 'busy' in vhost '/' in use",
        )
        .await;
    client.assert_usable().await;

    let (channel, mut events) = client.channel().await;
    let if_empty = QueueDeleteArguments::new("full").if_empty(true).finish();
    assert!(within("queue.delete", channel.queue_delete(if_empty))
        .await
        .is_err());
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - queue 'full' in vhost '/' not empty",
        )
        .await;
    client.assert_usable().await;

    within(
        "exchange.declare",
        setup.exchange_declare(ExchangeDeclareArguments::new("bound", "direct")),
    )
    .await
    .expect("exchange.declare");
    within(
        "queue.bind",
        setup.queue_bind(QueueBindArguments::new("full", "bound", "k")),
    )
    .await
    .expect("queue.bind");
    let (channel, mut events) = client.channel().await;
    let if_unused = ExchangeDeleteArguments::new("bound")
        .if_unused(true)
        .finish();
    assert!(
        within("exchange.delete", channel.exchange_delete(if_unused))
            .await
            .is_err()
    );
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - exchange 'bound' in vhost '/' in use",
        )
        .await;
    client.assert_usable().await;
}

#[tokio::test]
async fn unsupported_queue_arguments_are_406_and_unknown_ones_are_accepted() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    for (queue, argument, value, text) in [
        (
            "stream",
            "x-queue-type",
            FieldValue::from("stream"),
            "queue type 'stream' is not supported by this broker yet",
        ),
        (
            "sac",
            "x-single-active-consumer",
            FieldValue::I(1),
            "{unacceptable_type,signedint}",
        ),
        (
            "poison",
            "x-delivery-limit",
            FieldValue::l(-1),
            "{value_negative,-1}",
        ),
    ] {
        let (channel, mut events) = client.channel().await;
        let args = QueueDeclareArguments::new(queue)
            .arguments(table(&[(argument, value)]))
            .finish();
        assert!(within("queue.declare", channel.queue_declare(args))
            .await
            .is_err());
        events
            .expect_close(
                406,
                &format!(
                    "PRECONDITION_FAILED - invalid arg '{argument}' for queue '{queue}' in vhost '/': {text}"
                ),
            )
            .await;
        client.assert_usable().await;
    }
    let (channel, _) = client.channel().await;
    let args = QueueDeclareArguments::new("custom")
        .arguments(table(&[("x-foo", FieldValue::from("bar"))]))
        .finish();
    assert_eq!(declare(&channel, args).await, "custom");
}

#[tokio::test]
async fn a_headers_binding_with_an_invalid_x_match_is_406() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("q")).await;
    let mut bind = QueueBindArguments::new("q", "amq.headers", "");
    bind.arguments = table(&[
        ("x-match", FieldValue::from("bogus")),
        ("a", FieldValue::I(1)),
    ]);
    assert!(within("queue.bind", channel.queue_bind(bind))
        .await
        .is_err());
    events.expect_close(406, "PRECONDITION_FAILED - ").await;
    client.assert_usable().await;
}

/// RabbitMQ checks user-id against the authenticated user (docs/rabbitmq-compatibility.md §7).
#[tokio::test]
async fn a_user_id_other_than_the_login_is_406() {
    let broker = Broker::start(1);
    let client = Client::connect(&broker).await;
    let (channel, mut events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("uid")).await;
    let genuine = amqprs::BasicProperties::default()
        .with_user_id("guest")
        .finish();
    client::publish_with(&channel, "", "uid", genuine, b"ok").await;
    let forged = amqprs::BasicProperties::default()
        .with_user_id("mallory")
        .finish();
    client::publish_with(&channel, "", "uid", forged, b"forged").await;
    events
        .expect_close(
            406,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user was 'guest'",
        )
        .await;
    client.assert_usable().await;
}
