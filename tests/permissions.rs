//! Permissions on AMQP operations, checked where RabbitMQ 3.13 checks them and refused with its
//! codes and texts: a matrix of every operation against an allowed and a refused permission,
//! topic permissions with variables, vhost access at connection.open, and the vhost limits
//! `max-connections` (exact under concurrent opens) and `max-queues`.

mod client;
mod common;

use amqprs::channel::{
    BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel,
    ExchangeBindArguments, ExchangeDeclareArguments, ExchangeDeleteArguments,
    ExchangeUnbindArguments, QueueBindArguments, QueueDeclareArguments, QueueDeleteArguments,
    QueuePurgeArguments, QueueUnbindArguments,
};
use amqprs::{BasicProperties, FieldValue};
use client::{declare, table, within, Client};
use common::raw::{plain, RawClient};
use common::Broker;
use hare_protocol::Method;

/// guest everywhere; u in "v" may configure `c-*`, write `w-*` and read `r-*`; tu may do
/// everything in "v" but has topic permissions on the topic exchange "t"; "lim" allows one
/// connection and one queue, "zero" no connection, "three" three connections.
fn definitions(dir: &std::path::Path) -> String {
    let guest = |vhost: &str| {
        format!(r#"{{"user":"guest","vhost":"{vhost}","configure":".*","write":".*","read":".*"}}"#)
    };
    let json = format!(
        r#"{{
          "users": [{{"name":"u","password":"pw","tags":[]}},
                    {{"name":"tu","password":"pw","tags":[]}}],
          "vhosts": [{{"name":"v"}},
                     {{"name":"lim","limits":{{"max-connections":1,"max-queues":1}}}},
                     {{"name":"zero","limits":{{"max-connections":0}}}},
                     {{"name":"three","limits":{{"max-connections":3}}}}],
          "permissions": [{},{},{},{},
            {{"user":"u","vhost":"v","configure":"^c-","write":"^w-","read":"^r-"}},
            {{"user":"tu","vhost":"v","configure":".*","write":".*","read":".*"}}],
          "topic_permissions": [{{"user":"tu","vhost":"v","exchange":"t",
                                  "write":"^{{username}}\\.","read":"^{{vhost}}\\."}}]
        }}"#,
        guest("v"),
        guest("lim"),
        guest("zero"),
        guest("three"),
    );
    let path = dir.join("permissions.json");
    std::fs::write(&path, json).expect("write definitions");
    path.to_str().expect("utf-8").to_owned()
}

fn start() -> Broker {
    let dir = common::fresh_data_dir();
    std::fs::create_dir_all(&dir).expect("dir");
    let file = definitions(&dir);
    Broker::start_in_with(&dir, 2, &["--load-definitions", &file])
}

/// guest declares what the matrix works on in "v".
async fn set_up(broker: &Broker) {
    let guest = Client::connect_as(broker, "guest", "guest", "v")
        .await
        .expect("guest logs in to v");
    let (channel, _events) = guest.channel().await;
    for queue in ["r-q", "w-q", "q"] {
        declare(&channel, QueueDeclareArguments::new(queue)).await;
    }
    for (exchange, kind) in [("r-x", "direct"), ("w-x", "direct"), ("t", "topic")] {
        within(
            "exchange.declare",
            channel.exchange_declare(ExchangeDeclareArguments::new(exchange, kind)),
        )
        .await
        .expect("exchange.declare");
    }
    let _ = guest.connection.close().await;
}

/// A round trip with no permission check, so an asynchronous refusal would have arrived.
async fn sync(channel: &Channel) {
    let passive = QueueDeclareArguments::new("r-q").passive(true).finish();
    within("passive declare", channel.queue_declare(passive))
        .await
        .expect("the channel is still open after an allowed operation");
}

/// Runs one operation on a fresh channel of `$client`: `None` it must succeed (the channel
/// stays open), `Some(text)` the channel closes with 403 and exactly that text.
macro_rules! check {
    ($client:expr, |$channel:ident| $operation:expr, $refusal:expr) => {{
        let ($channel, mut events) = $client.channel().await;
        let result = within(stringify!($operation), async { $operation }).await;
        let refusal: Option<&str> = $refusal;
        match refusal {
            None => {
                result.expect(stringify!($operation));
                sync(&$channel).await;
            }
            Some(text) => {
                let _ = result;
                let (code, got) = events.closed().await;
                assert_eq!(
                    (code, got.as_str()),
                    (403, text),
                    "{}",
                    stringify!($operation)
                );
            }
        }
    }};
}

fn refused(access: &str, kind: &str, name: &str) -> String {
    format!("ACCESS_REFUSED - {access} access to {kind} '{name}' in vhost 'v' refused for user 'u'")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_checked_with_rabbitmqs_code_and_text() {
    let broker = start();
    set_up(&broker).await;
    let u = Client::connect_as(&broker, "u", "pw", "v")
        .await
        .expect("u logs in to v");
    let x = |name: &str| ExchangeDeclareArguments::new(name, "direct");
    check!(u, |ch| ch.exchange_declare(x("c-x")).await, None);
    check!(
        u,
        |ch| ch.exchange_declare(x("x1")).await,
        Some(&refused("configure", "exchange", "x1"))
    );
    check!(
        u,
        |ch| ch
            .exchange_delete(ExchangeDeleteArguments::new("c-x"))
            .await,
        None
    );
    check!(
        u,
        |ch| ch
            .exchange_delete(ExchangeDeleteArguments::new("w-x"))
            .await,
        Some(&refused("configure", "exchange", "w-x"))
    );
    queues(&u).await;
    bindings(&u).await;
    deliveries(&u).await;
    // Server-named queues are checked by their generated amq.gen-… name.
    let (channel, mut events) = u.channel().await;
    let _ = channel
        .queue_declare(QueueDeclareArguments::exclusive_server_named())
        .await;
    let (code, text) = events.closed().await;
    assert_eq!(code, 403);
    assert!(
        text.starts_with("ACCESS_REFUSED - configure access to queue 'amq.gen-")
            && text.ends_with("' in vhost 'v' refused for user 'u'"),
        "{text}"
    );
}

/// Queue declare, delete and purge.
async fn queues(u: &Client) {
    let q = QueueDeclareArguments::new;
    check!(u, |ch| ch.queue_declare(q("c-q")).await, None);
    check!(
        u,
        |ch| ch.queue_declare(q("q2")).await,
        Some(&refused("configure", "queue", "q2"))
    );
    // Passive declares check nothing.
    check!(
        u,
        |ch| ch.queue_declare(q("w-q").passive(true).finish()).await,
        None
    );
    // A new queue with a dead-letter exchange needs read on itself and write on the exchange.
    let dead_lettered = q("c-dl")
        .arguments(table(&[(
            "x-dead-letter-exchange",
            FieldValue::from("w-x"),
        )]))
        .finish();
    check!(
        u,
        |ch| ch.queue_declare(dead_lettered.clone()).await,
        Some(&refused("read", "queue", "c-dl"))
    );
    check!(
        u,
        |ch| ch.queue_delete(QueueDeleteArguments::new("c-q")).await,
        None
    );
    check!(
        u,
        |ch| ch.queue_delete(QueueDeleteArguments::new("w-q")).await,
        Some(&refused("configure", "queue", "w-q"))
    );
    check!(
        u,
        |ch| ch.queue_purge(QueuePurgeArguments::new("r-q")).await,
        None
    );
    check!(
        u,
        |ch| ch.queue_purge(QueuePurgeArguments::new("w-q")).await,
        Some(&refused("read", "queue", "w-q"))
    );
}

/// Publish (write on the exchange), consume and get (read on the queue).
async fn deliveries(u: &Client) {
    let publish = |exchange: &str| BasicPublishArguments::new(exchange, "k");
    let props = BasicProperties::default;
    check!(
        u,
        |ch| ch
            .basic_publish(props(), b"m".to_vec(), publish("w-x"))
            .await,
        None
    );
    check!(
        u,
        |ch| ch
            .basic_publish(props(), b"m".to_vec(), publish("r-x"))
            .await,
        Some(&refused("write", "exchange", "r-x"))
    );
    check!(
        u,
        |ch| ch.basic_publish(props(), b"m".to_vec(), publish("")).await,
        Some(&refused("write", "exchange", "amq.default"))
    );
    let consume = |queue: &str| BasicConsumeArguments::new(queue, "");
    check!(
        u,
        |ch| ch.basic_consume_rx(consume("r-q")).await.map(|_| ()),
        None
    );
    check!(
        u,
        |ch| ch.basic_consume_rx(consume("w-q")).await.map(|_| ()),
        Some(&refused("read", "queue", "w-q"))
    );
    check!(
        u,
        |ch| ch.basic_get(BasicGetArguments::new("r-q")).await,
        None
    );
    check!(
        u,
        |ch| ch.basic_get(BasicGetArguments::new("w-q")).await,
        Some(&refused("read", "queue", "w-q"))
    );
}

/// Bindings: write on the destination, read on the source.
async fn bindings(u: &Client) {
    let bind = QueueBindArguments::new;
    check!(u, |ch| ch.queue_bind(bind("w-q", "r-x", "k")).await, None);
    check!(
        u,
        |ch| ch.queue_bind(bind("r-q", "r-x", "k")).await,
        Some(&refused("write", "queue", "r-q"))
    );
    check!(
        u,
        |ch| ch.queue_bind(bind("w-q", "w-x", "k")).await,
        Some(&refused("read", "exchange", "w-x"))
    );
    let unbind = QueueUnbindArguments::new;
    check!(
        u,
        |ch| ch.queue_unbind(unbind("w-q", "r-x", "k")).await,
        None
    );
    check!(
        u,
        |ch| ch.queue_unbind(unbind("r-q", "r-x", "k")).await,
        Some(&refused("write", "queue", "r-q"))
    );
    let bind = ExchangeBindArguments::new;
    check!(
        u,
        |ch| ch.exchange_bind(bind("w-x", "r-x", "k")).await,
        None
    );
    check!(
        u,
        |ch| ch.exchange_bind(bind("r-x", "r-x", "k")).await,
        Some(&refused("write", "exchange", "r-x"))
    );
    let unbind = ExchangeUnbindArguments::new;
    check!(
        u,
        |ch| ch.exchange_unbind(unbind("w-x", "r-x", "k")).await,
        None
    );
    check!(
        u,
        |ch| ch.exchange_unbind(unbind("w-x", "w-x", "k")).await,
        Some(&refused("read", "exchange", "w-x"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_permissions_check_routing_and_binding_keys_with_variables() {
    let broker = start();
    set_up(&broker).await;
    let tu = Client::connect_as(&broker, "tu", "pw", "v")
        .await
        .expect("tu logs in to v");
    let publish = |key: &str| BasicPublishArguments::new("t", key);
    let props = BasicProperties::default;
    check!(
        tu,
        |ch| ch
            .basic_publish(props(), b"m".to_vec(), publish("tu.a"))
            .await,
        None
    );
    check!(
        tu,
        |ch| ch.basic_publish(props(), b"m".to_vec(), publish("x.a")).await,
        Some("ACCESS_REFUSED - write access to topic 'x.a' in exchange 't' in vhost 'v' refused for user 'tu'")
    );
    let bind = QueueBindArguments::new;
    check!(tu, |ch| ch.queue_bind(bind("q", "t", "v.#")).await, None);
    check!(
        tu,
        |ch| ch.queue_bind(bind("q", "t", "x.#")).await,
        Some("ACCESS_REFUSED - read access to topic 'x.#' in exchange 't' in vhost 'v' refused for user 'tu'")
    );
    // Other exchanges have no topic permission: anything goes.
    check!(
        tu,
        |ch| ch
            .basic_publish(
                props(),
                b"m".to_vec(),
                BasicPublishArguments::new("amq.topic", "x.a")
            )
            .await,
        None
    );
}

/// Logs in on a raw connection and sends connection.open; the answer is the caller's.
fn open_raw(broker: &Broker, user: &str, password: &str, vhost: &str) -> RawClient {
    let mut client = RawClient::connect(broker.addr);
    client.send_protocol_header();
    client.expect_start();
    client.send_start_ok("PLAIN", &plain(user, password), true);
    let tune = client.expect_tune();
    client.send_tune_ok(tune.channel_max, tune.frame_max, tune.heartbeat);
    client.send_open(vhost);
    client
}

fn expect_refused_open(mut client: RawClient, text: &str) {
    let close = client.expect_connection_close(530);
    assert_eq!(close.reply_text.to_string(), text);
}

fn opened(client: &mut RawClient) -> bool {
    match client.next_method() {
        (0, Method::ConnectionOpenOk(_)) => true,
        (0, Method::ConnectionClose(_)) => false,
        other => panic!("expected open-ok or close, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vhost_access_and_connection_limits_are_checked_at_open() {
    let broker = start();
    expect_refused_open(
        open_raw(&broker, "u", "pw", "/"),
        "NOT_ALLOWED - access to vhost '/' refused for user 'u'",
    );
    expect_refused_open(
        open_raw(&broker, "guest", "guest", "zero"),
        "NOT_ALLOWED - access to vhost 'zero' refused for user 'guest': connection limit (0) is reached",
    );
    let mut first = open_raw(&broker, "guest", "guest", "lim");
    assert!(opened(&mut first));
    expect_refused_open(
        open_raw(&broker, "guest", "guest", "lim"),
        "NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (1) is reached",
    );
    // The slot comes back when the connection ends.
    drop(first);
    common::eventually(std::time::Duration::from_secs(5), || {
        let mut next = open_raw(&broker, "guest", "guest", "lim");
        opened(&mut next).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_never_exceed_the_connection_limit() {
    let broker = std::sync::Arc::new(start());
    let opens: Vec<_> = (0..12)
        .map(|_| {
            let broker = broker.clone();
            tokio::spawn(async move {
                Client::connect_as(&broker, "guest", "guest", "three")
                    .await
                    .ok()
            })
        })
        .collect();
    let mut open = Vec::new();
    for task in opens {
        open.extend(task.await.expect("open task"));
    }
    assert_eq!(open.len(), 3, "max-connections 3 on two shards");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_limit_refuses_new_queues_only() {
    let broker = start();
    let guest = Client::connect_as(&broker, "guest", "guest", "lim")
        .await
        .expect("guest logs in to lim");
    let (channel, _events) = guest.channel().await;
    declare(&channel, QueueDeclareArguments::new("q1")).await;
    // Redeclaring an existing queue is not a new queue.
    declare(&channel, QueueDeclareArguments::new("q1")).await;
    let (channel, mut events) = guest.channel().await;
    let _ = channel
        .queue_declare(QueueDeclareArguments::new("q2"))
        .await;
    let (code, text) = events.closed().await;
    assert_eq!(
        (code, text.as_str()),
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost 'lim' (1) is reached"
        )
    );
}

/// `DELETE path` on the management API as guest; the status.
fn delete(broker: &Broker, path: &str) -> u16 {
    common::http::send(
        broker,
        Some(("guest", "guest")),
        "DELETE",
        path,
        &[],
        "application/json",
    )
    .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_or_vhost_closes_their_connections() {
    let broker = start();
    let mut u = Client::connect_as(&broker, "u", "pw", "v")
        .await
        .expect("u logs in to v");
    let mut tu = Client::connect_as(&broker, "tu", "pw", "v")
        .await
        .expect("tu logs in to v");
    let mut guest = Client::connect_as(&broker, "guest", "guest", "v")
        .await
        .expect("guest logs in to v");
    let other = Client::connect_as(&broker, "guest", "guest", "lim")
        .await
        .expect("guest logs in to lim");
    assert_eq!(delete(&broker, "/api/users/u"), 204);
    u.expect_close(320, "CONNECTION_FORCED - user 'u' is deleted")
        .await;
    guest.assert_usable().await;
    assert_eq!(delete(&broker, "/api/vhosts/v"), 204);
    tu.expect_close(320, "CONNECTION_FORCED - vhost 'v' is deleted")
        .await;
    guest
        .expect_close(320, "CONNECTION_FORCED - vhost 'v' is deleted")
        .await;
    // guest's connection to "lim" stays.
    other.assert_usable().await;
}
