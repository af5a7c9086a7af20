//! Per-user limits (`max-connections`, `max-channels`): refused with RabbitMQ 3.13's codes and
//! texts, counted over the user's connections on every shard (a moved connection once),
//! durable across kill -9, and managed through `/api/user-limits` and definitions
//! (docs/rabbitmq-compatibility.md §18, docs/management-api.md).

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Instant;

use common::http;
use common::raw::{plain, RawClient, REPLY_TIMEOUT};
use common::Broker;
use hare::protocol::{ChannelClose, ChannelOpen, ConnectionClose, Method};
use serde_json::{json, Value};

const PASSWORD: &str = "pw";

/// The handshake as `user` up to connection.open: open-ok, or the broker's connection.close.
fn try_open_as(addr: SocketAddr, user: &str) -> Result<RawClient, ConnectionClose> {
    let mut client = RawClient::connect(addr);
    client.send_protocol_header();
    client.expect_start();
    client.send_start_ok("PLAIN", &plain(user, PASSWORD), true);
    let tune = client.expect_tune();
    client.send_tune_ok(tune.channel_max, tune.frame_max, 0);
    client.send_open("/");
    match client.next_method() {
        (0, Method::ConnectionOpenOk(_)) => Ok(client),
        (0, Method::ConnectionClose(close)) => Err(close),
        other => panic!("expected open-ok or close, got {other:?}"),
    }
}

fn open_as(addr: SocketAddr, user: &str) -> RawClient {
    try_open_as(addr, user).unwrap_or_else(|close| panic!("refused: {close:?}"))
}

/// Opens a connection, retrying while a place given back a moment ago is on its way to the
/// shard that counts it.
fn open_eventually(addr: SocketAddr, user: &str) -> RawClient {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        match try_open_as(addr, user) {
            Ok(client) => return client,
            Err(close) if Instant::now() < deadline => drop(close),
            Err(close) => panic!("still refused: {close:?}"),
        }
    }
}

/// The connection.open refusal, with its code, text and method.
fn refused_open(addr: SocketAddr, user: &str) -> String {
    let close = match try_open_as(addr, user) {
        Ok(_) => panic!("{user} was admitted over its limit"),
        Err(close) => close,
    };
    assert_eq!(close.reply_code, 530, "{close:?}");
    assert_eq!((close.class_id, close.method_id), (10, 40), "{close:?}");
    close.reply_text.to_string_lossy()
}

fn connection_limit_text(user: &str, limit: i64) -> String {
    format!("NOT_ALLOWED - connection refused for user '{user}': user connection limit ({limit}) is reached")
}

fn channel_limit_text(user: &str, limit: i64) -> String {
    format!(
        "NOT_ALLOWED - number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
    )
}

/// channel.open on `channel`: true if opened, false if the broker closed the connection.
fn try_open_channel(client: &mut RawClient, channel: u16) -> Result<(), ConnectionClose> {
    client.send_method(channel, ChannelOpen::default());
    match client.next_method() {
        (ch, Method::ChannelOpenOk(_)) if ch == channel => Ok(()),
        (0, Method::ConnectionClose(close)) => Err(close),
        other => panic!("expected channel.open-ok or connection.close, got {other:?}"),
    }
}

/// A channel.open over the user's `max-channels`: 530 closing the connection.
fn refused_channel(client: &mut RawClient, channel: u16) -> String {
    client.send_method(channel, ChannelOpen::default());
    let close = client.expect_connection_close_for(530, 20, 10);
    close.reply_text.to_string_lossy()
}

/// A new connection of `user` with channel 1 open, retrying while a channel's place given back
/// a moment ago is on its way to the shard that counts it.
fn channel_eventually(addr: SocketAddr, user: &str) -> RawClient {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let mut client = open_as(addr, user);
        match try_open_channel(&mut client, 1) {
            Ok(()) => return client,
            Err(close) => assert!(Instant::now() < deadline, "still refused: {close:?}"),
        }
    }
}

fn close_channel(client: &mut RawClient, channel: u16) {
    client.send_method(channel, ChannelClose::default());
    match client.next_method() {
        (ch, Method::ChannelCloseOk(_)) if ch == channel => {}
        other => panic!("expected channel.close-ok, got {other:?}"),
    }
}

fn api(broker: &Broker, method: &str, path: &str, body: &Value) -> http::Answer {
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    http::send(
        broker,
        Some(("guest", "guest")),
        method,
        path,
        &body,
        "application/json",
    )
}

/// A user with every permission on `/`.
fn add_user(broker: &Broker, user: &str) {
    let put = api(
        broker,
        "PUT",
        &format!("/api/users/{user}"),
        &json!({"password": PASSWORD, "tags": ""}),
    );
    assert_eq!(put.status, 201, "{:?}", put.body);
    let permission = json!({"configure": ".*", "write": ".*", "read": ".*"});
    let put = api(
        broker,
        "PUT",
        &format!("/api/permissions/%2F/{user}"),
        &permission,
    );
    assert_eq!(put.status, 201, "{:?}", put.body);
}

fn set_limit(broker: &Broker, user: &str, name: &str, value: i64) {
    let path = format!("/api/user-limits/{user}/{name}");
    let put = api(broker, "PUT", &path, &json!({ "value": value }));
    assert_eq!(put.status, 204, "{:?}", put.body);
}

fn limits_of(broker: &Broker, user: &str) -> Value {
    let answer = api(
        broker,
        "GET",
        &format!("/api/user-limits/{user}"),
        &Value::Null,
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    match answer.body.as_array().map(Vec::as_slice) {
        Some([]) => json!({}),
        Some([one]) => {
            assert_eq!(one["user"], user);
            one["value"].clone()
        }
        _ => panic!("one item at most: {:?}", answer.body),
    }
}

/// The shards the user's connections live on, one entry per connection.
fn shards_of(broker: &Broker, user: &str) -> Vec<u64> {
    let answer = api(broker, "GET", "/api/connections", &Value::Null);
    assert_eq!(answer.status, 200);
    let mut shards: Vec<u64> = (answer.body.as_array().expect("list").iter())
        .filter(|connection| connection["user"] == user)
        .map(|connection| connection["hare_shard"].as_u64().expect("hare_shard"))
        .collect();
    shards.sort_unstable();
    shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_counts_the_users_connections_on_every_shard() {
    let broker = Broker::start(2);
    add_user(&broker, "u");
    set_limit(&broker, "u", "max-connections", 2);
    let mut first = open_as(broker.addr, "u");
    let mut second = open_as(broker.addr, "u");
    assert_eq!(shards_of(&broker, "u"), [0, 1], "one on each shard");
    assert_eq!(
        refused_open(broker.addr, "u"),
        connection_limit_text("u", 2)
    );
    // Other users are not counted.
    let mut guest = RawClient::open(broker.addr);
    guest.open_channel(1);
    guest.assert_serving();

    // Lowering the limit closes nothing; it holds new connections back until enough closed.
    set_limit(&broker, "u", "max-connections", 1);
    for client in [&mut first, &mut second] {
        client.open_channel(1);
        client.assert_serving();
    }
    assert_eq!(
        refused_open(broker.addr, "u"),
        connection_limit_text("u", 1)
    );
    drop(first);
    drop(second);
    let third = open_eventually(broker.addr, "u");
    assert_eq!(
        refused_open(broker.addr, "u"),
        connection_limit_text("u", 1)
    );
    drop(third);

    // 0 admits nobody, a negative value everybody.
    set_limit(&broker, "u", "max-connections", 0);
    assert_eq!(
        refused_open(broker.addr, "u"),
        connection_limit_text("u", 0)
    );
    set_limit(&broker, "u", "max-connections", -1);
    let many: Vec<RawClient> = (0..3).map(|_| open_eventually(broker.addr, "u")).collect();
    assert_eq!(many.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_channels_counts_every_channel_of_the_user_and_closes_the_connection_over_it() {
    let broker = Broker::start(2);
    add_user(&broker, "u");
    // Channels opened before the limit is set count.
    let mut first = open_as(broker.addr, "u");
    first.open_channel(1);
    first.open_channel(2);
    set_limit(&broker, "u", "max-channels", 3);
    let mut second = open_as(broker.addr, "u");
    assert_eq!(shards_of(&broker, "u"), [0, 1], "one on each shard");
    second.open_channel(1);
    assert_eq!(refused_channel(&mut second, 2), channel_limit_text("u", 3));
    // The refusal closed that connection only, and gave its channel back.
    first.assert_serving();
    let mut third = channel_eventually(broker.addr, "u");
    assert_eq!(refused_channel(&mut third, 2), channel_limit_text("u", 3));

    // A closed channel's place comes back, for any of the user's connections.
    close_channel(&mut first, 2);
    channel_eventually(broker.addr, "u").assert_serving();

    // 0 allows no channel at all; a negative value any number.
    set_limit(&broker, "u", "max-channels", 0);
    let mut fifth = open_as(broker.addr, "u");
    assert_eq!(refused_channel(&mut fifth, 1), channel_limit_text("u", 0));
    set_limit(&broker, "u", "max-channels", -1);
    for channel in 2..6 {
        first.open_channel(channel);
    }
}

/// A connection that moves to its queue's shard keeps its one place and its channels'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_connection_and_its_channels_are_counted_once() {
    let broker = Broker::start(2);
    add_user(&broker, "u");
    set_limit(&broker, "u", "max-connections", 2);
    set_limit(&broker, "u", "max-channels", 3);
    // A queue on the guest connection's shard; u's first connection lands on the other one.
    let mut setup = RawClient::open(broker.addr);
    setup.open_channel(1);
    setup.declare_queue(1, "moves");
    let mut moving = open_as(broker.addr, "u");
    let before = shards_of(&broker, "u");
    moving.open_channel(1);
    moving.publish(1, "moves", b"m");
    assert_eq!(moving.get(1, "moves"), Some(b"m".to_vec()));
    let after = shards_of(&broker, "u");
    assert_ne!(before, after, "the publisher moved to its queue's shard");

    moving.open_channel(2);
    let mut other = open_as(broker.addr, "u");
    assert_eq!(
        refused_open(broker.addr, "u"),
        connection_limit_text("u", 2)
    );
    other.open_channel(1);
    assert_eq!(refused_channel(&mut other, 2), channel_limit_text("u", 3));
    // Its close gives back its place and its channel, once.
    drop(moving);
    let mut again = open_eventually(broker.addr, "u");
    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut opened = 0;
    while opened < 3 {
        match try_open_channel(&mut again, opened + 1) {
            Ok(()) => opened += 1,
            Err(close) => {
                assert!(Instant::now() < deadline, "still refused: {close:?}");
                again = open_eventually(broker.addr, "u");
                opened = 0;
            }
        }
    }
    assert_eq!(refused_channel(&mut again, 4), channel_limit_text("u", 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_limits_survive_kill_9_and_a_restart_and_go_with_the_user() {
    let broker = Broker::start(2);
    add_user(&broker, "u");
    add_user(&broker, "plain");
    set_limit(&broker, "u", "max-connections", 1);
    set_limit(&broker, "u", "max-channels", 7);
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    let expected = json!({"max-connections": 1, "max-channels": 7});
    assert_eq!(limits_of(&broker, "u"), expected);
    let held = open_as(broker.addr, "u");
    assert_eq!(
        refused_open(broker.addr, "u"),
        connection_limit_text("u", 1)
    );
    drop(held);

    // A user put again keeps its limits; a deleted user's go with it.
    let put = api(
        &broker,
        "PUT",
        "/api/users/u",
        &json!({"password": PASSWORD, "tags": "management"}),
    );
    assert_eq!(put.status, 204, "{:?}", put.body);
    let broker = broker.restart();
    assert_eq!(limits_of(&broker, "u"), expected);
    assert_eq!(
        api(&broker, "DELETE", "/api/users/u", &Value::Null).status,
        204
    );
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    add_user(&broker, "u");
    assert_eq!(limits_of(&broker, "u"), json!({}));
    let all = api(&broker, "GET", "/api/user-limits", &Value::Null);
    assert_eq!(all.body, json!([]));
    let clients: Vec<RawClient> = (0..2).map(|_| open_as(broker.addr, "u")).collect();
    assert_eq!(clients.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_lists_limits_and_refuses_bad_changes_with_rabbitmqs_statuses() {
    let broker = Broker::start(1);
    add_user(&broker, "u");
    add_user(&broker, "v");
    set_limit(&broker, "u", "max-connections", 5);
    set_limit(&broker, "u", "max-channels", 50);
    set_limit(&broker, "v", "max-channels", -1);
    let all = api(&broker, "GET", "/api/user-limits", &Value::Null);
    assert_eq!(all.status, 200);
    assert_eq!(
        all.body,
        json!([
            {"user": "u", "value": {"max-connections": 5, "max-channels": 50}},
            {"user": "v", "value": {"max-channels": -1}},
        ])
    );
    let user = api(&broker, "GET", "/api/users/u", &Value::Null);
    assert_eq!(
        user.body["limits"],
        json!({"max-connections": 5, "max-channels": 50})
    );

    // Unknown users are 404; bad names and values 400 with RabbitMQ's reasons.
    let statuses = [
        ("GET", "/api/user-limits/nobody", Value::Null, 404),
        (
            "PUT",
            "/api/user-limits/nobody/max-connections",
            json!({"value": 1}),
            404,
        ),
        (
            "DELETE",
            "/api/user-limits/nobody/max-channels",
            Value::Null,
            404,
        ),
        ("PUT", "/api/user-limits/u/max-connections", json!({}), 400),
        (
            "PUT",
            "/api/user-limits/u/max-connections",
            json!({"value": "many"}),
            400,
        ),
        (
            "PUT",
            "/api/user-limits/u/max-queues",
            json!({"value": 1}),
            400,
        ),
        (
            "POST",
            "/api/user-limits/u/max-queues",
            json!({"value": 1}),
            405,
        ),
    ];
    for (method, path, body, status) in statuses {
        let answer = api(&broker, method, path, &body);
        assert_eq!(answer.status, status, "{method} {path}: {:?}", answer.body);
    }
    let answer = api(
        &broker,
        "PUT",
        "/api/user-limits/u/max-queues",
        &json!({"value": 1}),
    );
    assert_eq!(
        answer.body["reason"],
        "Unrecognised terms [{<<\"max-queues\">>,1}] in user-limits"
    );
    let answer = api(
        &broker,
        "PUT",
        "/api/user-limits/u/max-channels",
        &json!({"value": "many"}),
    );
    assert_eq!(
        answer.body["reason"],
        "max-channels should be a number, actually was <<\"many\">>"
    );
    let answer = api(
        &broker,
        "PUT",
        "/api/user-limits/u/max-connections",
        &json!({}),
    );
    assert_eq!(answer.body["reason"], "[{key_missing,value}]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_set_one_limit_at_a_time_and_clear_one_or_all() {
    let broker = Broker::start(1);
    add_user(&broker, "u");
    add_user(&broker, "v");
    set_limit(&broker, "u", "max-connections", 5);
    set_limit(&broker, "u", "max-channels", 50);
    set_limit(&broker, "v", "max-channels", -1);
    // Only administrators change them.
    let put = http::send(
        &broker,
        Some(("v", PASSWORD)),
        "PUT",
        "/api/user-limits/v/max-channels",
        br#"{"value": 1}"#,
        "application/json",
    );
    assert_eq!(put.status, 401);
    assert_eq!(
        limits_of(&broker, "u"),
        json!({"max-connections": 5, "max-channels": 50})
    );

    assert_eq!(
        api(
            &broker,
            "DELETE",
            "/api/user-limits/u/max-channels",
            &Value::Null
        )
        .status,
        204
    );
    assert_eq!(limits_of(&broker, "u"), json!({"max-connections": 5}));
    set_limit(&broker, "u", "max-channels", 9);
    assert_eq!(
        api(&broker, "DELETE", "/api/user-limits/u/all", &Value::Null).status,
        204
    );
    assert_eq!(limits_of(&broker, "u"), json!({}));
    let all = api(&broker, "GET", "/api/user-limits", &Value::Null);
    let users: BTreeSet<String> = (all.body.as_array().expect("list").iter())
        .map(|item| item["user"].as_str().expect("user").to_owned())
        .collect();
    assert_eq!(users, BTreeSet::from(["v".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_carry_user_limits_out_and_merge_them_in() {
    let broker = Broker::start(1);
    add_user(&broker, "u");
    set_limit(&broker, "u", "max-connections", 4);
    let exported = api(&broker, "GET", "/api/definitions", &Value::Null);
    assert_eq!(exported.status, 200);
    let users = exported.body["users"].as_array().expect("users");
    let u = users.iter().find(|user| user["name"] == "u").expect("u");
    assert_eq!(u["limits"], json!({"max-connections": 4}));
    let guest = users
        .iter()
        .find(|user| user["name"] == "guest")
        .expect("guest");
    assert_eq!(guest["limits"], json!({}));

    // An import sets the limits it names and keeps the others; `[]` (as some versions
    // write no limits) changes nothing.
    let definitions = json!({"users": [
        {"name": "u", "password_hash": u["password_hash"], "tags": "",
            "limits": {"max-channels": 8}},
        {"name": "w", "password": "pw", "tags": [], "limits": {"max-connections": 0}},
        {"name": "guest", "password": "guest", "tags": "administrator", "limits": []},
    ]});
    let imported = api(&broker, "POST", "/api/definitions", &definitions);
    assert!(
        imported.status == 200 || imported.status == 204,
        "{:?}",
        imported.body
    );
    assert_eq!(
        limits_of(&broker, "u"),
        json!({"max-connections": 4, "max-channels": 8})
    );
    assert_eq!(limits_of(&broker, "w"), json!({"max-connections": 0}));
    assert_eq!(limits_of(&broker, "guest"), json!({}));

    let bad = json!({"users": [{"name": "x", "password": "pw", "tags": "",
        "limits": {"max-connections": "ten"}}]});
    let refused = api(&broker, "POST", "/api/definitions", &bad);
    assert_eq!(refused.status, 400, "{:?}", refused.body);
}
