//! The management API's write side, black box: the real broker (tests/common), requests from
//! an HTTP client we did not write (ureq), and a real AMQP client (amqprs, tests/client) to
//! see what the requests did: users log in, messages published over HTTP arrive, messages
//! taken over HTTP are gone or come back redelivered, deleted vhosts stay deleted across
//! kill -9. Bad input gets RabbitMQ 3.13's status and a JSON error body, never a hang.

mod client;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use amqprs::channel::{BasicAckArguments, Channel, QueueDeclareArguments};
use amqprs::BasicProperties;
use client::{consume, declare, get, publish, publish_with, until_ready, Client};
use common::http::{send, Answer};
use common::Broker;
use serde_json::{json, Value};

const GUEST: (&str, &str) = ("guest", "guest");

fn call(broker: &Broker, method: &str, path: &str, body: Value) -> Answer {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    send(
        broker,
        Some(GUEST),
        method,
        path,
        &bytes,
        "application/json",
    )
}

fn as_user(broker: &Broker, who: (&str, &str), method: &str, path: &str, body: Value) -> Answer {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    send(broker, Some(who), method, path, &bytes, "application/json")
}

/// Asserts the status and returns the body.
fn expect(answer: Answer, status: u16, what: &str) -> Value {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    answer.body
}

fn ok(broker: &Broker, method: &str, path: &str, body: Value, status: u16) -> Value {
    expect(
        call(broker, method, path, body),
        status,
        &format!("{method} {path}"),
    )
}

fn bad_request(answer: Answer, what: &str) -> String {
    let body = expect(answer, 400, what);
    assert_eq!(body["error"], "bad_request", "{what}: {body}");
    body["reason"].as_str().unwrap_or_default().to_owned()
}

/// Full permissions for guest in `vhost`.
fn grant_guest(broker: &Broker, vhost: &str) {
    let all = json!({"configure": ".*", "write": ".*", "read": ".*"});
    ok(
        broker,
        "PUT",
        &format!("/api/permissions/{vhost}/guest"),
        all,
        201,
    );
}

fn get_json(broker: &Broker, path: &str) -> Value {
    ok(broker, "GET", path, Value::Null, 200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_made_over_http_logs_in_to_a_vhost_made_over_http() {
    let broker = Broker::start(2);
    let vhost = json!({"description": "orders", "tags": "a,b", "default_queue_type": "classic"});
    ok(&broker, "PUT", "/api/vhosts/orders", vhost.clone(), 201);
    ok(
        &broker,
        "PUT",
        "/api/vhosts/orders",
        json!({"description": "more"}),
        204,
    );
    let got = get_json(&broker, "/api/vhosts/orders");
    assert_eq!(got["description"], "more");
    assert_eq!(got["tags"], json!(["a", "b"]));
    assert_eq!(got["metadata"]["description"], "more");
    let user = json!({"password": "s3cret", "tags": ["management"]});
    ok(&broker, "PUT", "/api/users/bob", user.clone(), 201);
    ok(&broker, "PUT", "/api/users/bob", user, 204);
    let got = get_json(&broker, "/api/users/bob");
    assert_eq!(got["tags"], json!(["management"]));
    assert_eq!(got["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert!(Client::connect_as(&broker, "bob", "s3cret", "orders")
        .await
        .is_err());
    let permission = json!({"configure": ".*", "write": ".*", "read": ".*"});
    ok(
        &broker,
        "PUT",
        "/api/permissions/orders/bob",
        permission.clone(),
        201,
    );
    ok(
        &broker,
        "PUT",
        "/api/permissions/orders/bob",
        permission,
        204,
    );
    let client = Client::connect_as(&broker, "bob", "s3cret", "orders")
        .await
        .expect("bob logs in to orders");
    client.assert_usable().await;
    let listed = get_json(&broker, "/api/users/bob/permissions");
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(
        get_json(&broker, "/api/vhosts/orders/permissions")[0]["user"],
        "bob"
    );
    let without = get_json(&broker, "/api/users/without-permissions");
    assert_eq!(without, json!([]));
    hashed_and_passwordless_users(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_vhost_with_persistent_messages_stays_deleted_across_kill_9() {
    let broker = Broker::start(2);
    ok(&broker, "PUT", "/api/vhosts/doomed", Value::Null, 201);
    // As in RabbitMQ, creating a vhost grants its creator no permission in it.
    grant_guest(&broker, "doomed");
    ok(
        &broker,
        "PUT",
        "/api/queues/doomed/keep",
        json!({"durable": true}),
        201,
    );
    for n in 0..5 {
        let message = json!({"properties": {"delivery_mode": 2}, "routing_key": "keep",
            "payload": format!("m{n}"), "payload_encoding": "string"});
        let routed = ok(
            &broker,
            "POST",
            "/api/exchanges/doomed/amq.default/publish",
            message,
            200,
        );
        assert_eq!(routed, json!({"routed": true}));
    }
    assert_eq!(get_json(&broker, "/api/queues/doomed/keep")["messages"], 5);
    ok(&broker, "DELETE", "/api/vhosts/doomed", Value::Null, 204);
    ok(&broker, "DELETE", "/api/vhosts/doomed", Value::Null, 404);
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, 2);
    ok(&broker, "GET", "/api/vhosts/doomed", Value::Null, 404);
    ok(&broker, "GET", "/api/queues/doomed", Value::Null, 404);
    ok(&broker, "PUT", "/api/vhosts/doomed", Value::Null, 201);
    grant_guest(&broker, "doomed");
    assert_eq!(get_json(&broker, "/api/queues/doomed"), json!([]));
    ok(
        &broker,
        "PUT",
        "/api/queues/doomed/keep",
        json!({"durable": true}),
        201,
    );
    assert_eq!(get_json(&broker, "/api/queues/doomed/keep")["messages"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_published_over_http_are_read_with_amqp_and_the_other_way_round() {
    let broker = Broker::start(2);
    let queue = json!({"durable": false, "auto_delete": false, "arguments": {"x-max-length": 100}});
    ok(&broker, "PUT", "/api/queues/%2F/work", queue.clone(), 201);
    ok(&broker, "PUT", "/api/queues/%2F/work", queue, 204);
    let reason = bad_request(
        call(
            &broker,
            "PUT",
            "/api/queues/%2F/work",
            json!({"durable": true}),
        ),
        "inequivalent redeclare",
    );
    assert!(reason.contains("inequivalent arg 'durable'"), "{reason}");
    let message = json!({"properties": {"headers": {"h": 1}, "content_type": "text/plain",
        "message_id": "id-1"}, "routing_key": "work", "payload": "aGVsbG8=",
        "payload_encoding": "base64"});
    assert_eq!(
        ok(
            &broker,
            "POST",
            "/api/exchanges/%2F/amq.default/publish",
            message,
            200
        ),
        json!({"routed": true})
    );
    let unroutable = json!({"properties": {}, "routing_key": "nowhere", "payload": "x",
        "payload_encoding": "string"});
    assert_eq!(
        ok(
            &broker,
            "POST",
            "/api/exchanges/%2F/amq.default/publish",
            unroutable,
            200
        ),
        json!({"routed": false})
    );
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let (_, properties, body) = get(&channel, "work", true).await.expect("a message");
    assert_eq!(body, b"hello");
    assert_eq!(properties.message_id().map(String::as_str), Some("id-1"));
    assert_eq!(
        properties.content_type().map(String::as_str),
        Some("text/plain")
    );

    get_with_each_ack_mode(&broker, &channel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_and_bindings_are_declared_bound_and_deleted() {
    let broker = Broker::start(2);
    ok(
        &broker,
        "PUT",
        "/api/exchanges/%2F/events",
        json!({"type": "topic", "durable": true}),
        201,
    );
    ok(
        &broker,
        "PUT",
        "/api/exchanges/%2F/events",
        json!({"type": "topic", "durable": true}),
        204,
    );
    bad_request(
        call(
            &broker,
            "PUT",
            "/api/exchanges/%2F/events",
            json!({"type": "fanout", "durable": true}),
        ),
        "inequivalent",
    );
    let reason = bad_request(
        call(
            &broker,
            "PUT",
            "/api/exchanges/%2F/other",
            json!({"durable": true}),
        ),
        "no type",
    );
    assert_eq!(reason, "[{key_missing,type}]");
    for reserved in ["amq.default", "amq.direct", "amq.mine"] {
        let path = format!("/api/exchanges/%2F/{reserved}");
        let body = expect(
            call(&broker, "PUT", &path, json!({"type": "direct"})),
            401,
            &path,
        );
        assert_eq!(
            body,
            json!({"error": "not_authorised", "reason": "Access refused."})
        );
    }
    expect(
        call(
            &broker,
            "DELETE",
            "/api/exchanges/%2F/amq.direct",
            Value::Null,
        ),
        401,
        "amq.direct",
    );
    bindings_are_made_listed_and_removed(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_and_limits_are_stored_listed_and_checked() {
    let broker = Broker::start(2);
    let policy = json!({"pattern": "^q\\.", "definition": {"max-length": 10}, "priority": 1,
        "apply-to": "queues"});
    ok(&broker, "PUT", "/api/policies/%2F/cap", policy.clone(), 201);
    ok(&broker, "PUT", "/api/policies/%2F/cap", policy, 204);
    let listed = get_json(&broker, "/api/policies/%2F");
    assert_eq!(listed[0]["name"], "cap");
    assert_eq!(listed[0]["apply-to"], "queues");
    assert_eq!(listed[0]["definition"], json!({"max-length": 10}));
    assert_eq!(get_json(&broker, "/api/policies/%2F/cap")["priority"], 1);
    let bad_apply =
        json!({"pattern": ".*", "definition": {"max-length": 1}, "apply-to": "nothing"});
    let reason = bad_request(
        call(&broker, "PUT", "/api/policies/%2F/bad", bad_apply),
        "apply-to",
    );
    assert!(reason.contains("apply-to"), "{reason}");
    let missing = bad_request(
        call(
            &broker,
            "PUT",
            "/api/policies/%2F/bad",
            json!({"pattern": "x"}),
        ),
        "no definition",
    );
    assert_eq!(missing, "[{key_missing,definition}]");
    let op = json!({"pattern": ".*", "definition": {"max-length": 5}});
    ok(&broker, "PUT", "/api/operator-policies/%2F/ops", op, 201);
    assert_eq!(
        get_json(&broker, "/api/operator-policies")[0]["name"],
        "ops"
    );
    assert_eq!(
        get_json(&broker, "/api/policies").as_array().map(Vec::len),
        Some(1)
    );
    ok(
        &broker,
        "DELETE",
        "/api/operator-policies/%2F/ops",
        Value::Null,
        204,
    );
    ok(&broker, "DELETE", "/api/policies/%2F/cap", Value::Null, 204);
    ok(&broker, "DELETE", "/api/policies/%2F/cap", Value::Null, 404);
    let body = expect(
        call(
            &broker,
            "PUT",
            "/api/policies/nowhere/p",
            json!({"pattern": ".*", "definition": {"max-length": 1}}),
        ),
        404,
        "unknown vhost",
    );
    assert_eq!(
        body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );

    limits_are_set_listed_and_cleared(&broker).await;
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rabbitmq-definitions.json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_round_trip_and_a_rabbitmq_export_imports_over_http() {
    let broker = Broker::start(2);
    ok(&broker, "PUT", "/api/vhosts/shop2", Value::Null, 201);
    grant_guest(&broker, "shop2");
    ok(
        &broker,
        "PUT",
        "/api/exchanges/shop2/orders",
        json!({"type": "topic", "durable": true}),
        201,
    );
    ok(
        &broker,
        "PUT",
        "/api/queues/shop2/billing",
        json!({"durable": true, "arguments": {"x-message-ttl": 60000}}),
        201,
    );
    ok(
        &broker,
        "POST",
        "/api/bindings/shop2/e/orders/q/billing",
        json!({"routing_key": "order.#"}),
        201,
    );
    ok(
        &broker,
        "PUT",
        "/api/policies/shop2/ttl",
        json!({"pattern": "^b", "definition": {"expires": 600000}}),
        201,
    );
    let before = get_json(&broker, "/api/definitions");
    let alias = get_json(&broker, "/api/all-configuration");
    assert_eq!(before, alias);
    let one_vhost = get_json(&broker, "/api/definitions/shop2");
    assert!(one_vhost.get("users").is_none());
    assert_eq!(one_vhost["queues"][0]["name"], "billing");
    assert!(one_vhost["queues"][0].get("vhost").is_none());
    ok(&broker, "DELETE", "/api/vhosts/shop2", Value::Null, 204);
    assert_ne!(get_json(&broker, "/api/definitions"), before);
    ok(&broker, "POST", "/api/definitions", before.clone(), 204);
    assert_eq!(get_json(&broker, "/api/definitions"), before);
    // The one-vhost file goes into another vhost.
    ok(&broker, "PUT", "/api/vhosts/copy", Value::Null, 201);
    grant_guest(&broker, "copy");
    ok(&broker, "POST", "/api/definitions/copy", one_vhost, 204);
    assert_eq!(
        get_json(&broker, "/api/queues/copy/billing")["arguments"],
        json!({"x-message-ttl": 60000})
    );

    a_rabbitmq_export_is_imported_over_http(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_rabbitmq_statuses_and_json_errors() {
    let broker = Broker::start(2);
    let malformed = send(
        &broker,
        Some(GUEST),
        "PUT",
        "/api/users/x",
        b"{\"tags\":",
        "application/json",
    );
    assert_eq!(bad_request(malformed, "malformed"), "not_json");
    let doubly = send(
        &broker,
        Some(GUEST),
        "PUT",
        "/api/users/x",
        b"\"{}\"",
        "application/json",
    );
    assert!(bad_request(doubly, "string body").contains("doubly"));
    let array = send(
        &broker,
        Some(GUEST),
        "PUT",
        "/api/users/x",
        b"[]",
        "application/json",
    );
    bad_request(array, "array body");
    assert_eq!(
        bad_request(
            call(&broker, "PUT", "/api/users/x", json!({"password": "p"})),
            "no tags"
        ),
        "[{key_missing,tags}]"
    );
    bad_request(
        call(
            &broker,
            "PUT",
            "/api/users/x",
            json!({"password": 5, "tags": ""}),
        ),
        "number password",
    );
    bad_request(
        call(&broker, "PUT", "/api/users/x", json!({"tags": 7})),
        "number tags",
    );
    bad_request(
        call(
            &broker,
            "PUT",
            "/api/users/x",
            json!({"password_hash": "!!", "tags": ""}),
        ),
        "bad hash",
    );
    bad_request(
        call(
            &broker,
            "PUT",
            "/api/users/x",
            json!({"password_hash": "", "hashing_algorithm": "rot13", "tags": ""}),
        ),
        "bad algorithm",
    );
    bad_request(
        call(
            &broker,
            "PUT",
            "/api/queues/%2F/q",
            json!({"durable": "maybe"}),
        ),
        "durable type",
    );
    bad_request(
        call(&broker, "PUT", "/api/queues/%2F/q", json!({"arguments": 3})),
        "arguments type",
    );
    permission_and_vhost_errors(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_switched_on_over_http_copies_publishes_and_deliveries() {
    let broker = Broker::start(2);
    ok(
        &broker,
        "PUT",
        "/api/vhosts/%2F",
        json!({"tracing": true}),
        204,
    );
    assert_eq!(get_json(&broker, "/api/vhosts/%2F")["tracing"], true);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let traced = declare(&channel, QueueDeclareArguments::new("traced")).await;
    ok(
        &broker,
        "PUT",
        "/api/queues/%2F/trace-log",
        Value::Null,
        201,
    );
    ok(
        &broker,
        "POST",
        "/api/bindings/%2F/e/amq.rabbitmq.trace/q/trace-log",
        json!({"routing_key": "#"}),
        201,
    );
    publish(&channel, "", &traced, b"watched").await;
    let (tag, _, body) = loop {
        if let Some(message) = get(&channel, &traced, false).await {
            break message;
        }
    };
    assert_eq!(body, b"watched");
    channel
        .basic_ack(BasicAckArguments::new(tag.delivery_tag(), false))
        .await
        .expect("ack");
    let copies = common::eventually(Duration::from_secs(10), || {
        let got = ok(
            &broker,
            "POST",
            "/api/queues/%2F/trace-log/get",
            json!({"count": 10, "ackmode": "ack_requeue_true", "encoding": "auto"}),
            200,
        );
        (got.as_array().map(Vec::len) == Some(2)).then_some(got)
    })
    .await;
    assert_eq!(copies[0]["routing_key"], "publish.");
    assert_eq!(copies[0]["payload"], "watched");
    assert_eq!(
        copies[0]["properties"]["headers"]["routing_keys"],
        json!(["traced"])
    );
    assert_eq!(copies[1]["routing_key"], "deliver.traced");
    assert_eq!(copies[1]["properties"]["headers"]["exchange_name"], "");
    ok(
        &broker,
        "PUT",
        "/api/vhosts/%2F",
        json!({"tracing": false}),
        204,
    );
    assert_eq!(get_json(&broker, "/api/vhosts/%2F")["tracing"], false);
}

async fn names_and_sizes(broker: &Broker) {
    // Traversal-looking names are names.
    ok(
        broker,
        "PUT",
        "/api/queues/%2F/..%2F..%2Fetc",
        Value::Null,
        201,
    );
    assert_eq!(
        get_json(broker, "/api/queues/%2F/..%2F..%2Fetc")["name"],
        "../../etc"
    );
    ok(broker, "PUT", "/api/vhosts/..%2F..", Value::Null, 201);
    assert_eq!(get_json(broker, "/api/vhosts/..%2F..")["name"], "../..");
    // Over RabbitMQ's 20 000 000-byte limit: its 400.
    let mut huge = b"{\"description\":\"".to_vec();
    huge.resize(20_000_100, b'a');
    huge.extend_from_slice(b"\"}");
    let answer = send(
        broker,
        Some(GUEST),
        "PUT",
        "/api/vhosts/huge",
        &huge,
        "application/json",
    );
    assert_eq!(
        bad_request(answer, "huge"),
        "Exceeded HTTP request body size limit"
    );
    ok(broker, "GET", "/api/vhosts/huge", Value::Null, 404);

    who_may_do_what(broker).await;
}

async fn who_may_do_what(broker: &Broker) {
    // Who may do what.
    let answer = send(
        broker,
        None,
        "PUT",
        "/api/users/x",
        b"{\"tags\":\"\"}",
        "application/json",
    );
    assert_eq!(answer.status, 401);
    assert_eq!(answer.body["error"], "not_authorised");
    let wrong = send(
        broker,
        Some(("guest", "nope")),
        "PUT",
        "/api/users/x",
        b"{}",
        "application/json",
    );
    assert_eq!(wrong.status, 401);
    ok(
        broker,
        "PUT",
        "/api/users/watcher",
        json!({"password": "w", "tags": "monitoring"}),
        201,
    );
    ok(
        broker,
        "PUT",
        "/api/users/mgr",
        json!({"password": "m", "tags": "management"}),
        201,
    );
    ok(
        broker,
        "PUT",
        "/api/users/pol",
        json!({"password": "p", "tags": "policymaker"}),
        201,
    );
    ok(broker, "PUT", "/api/vhosts/mine", Value::Null, 201);
    for user in ["mgr", "pol"] {
        ok(
            broker,
            "PUT",
            &format!("/api/permissions/mine/{user}"),
            json!({"configure": "^own", "write": ".*", "read": ".*"}),
            201,
        );
    }
    let watcher = ("watcher", "w");
    let body = expect(
        as_user(broker, watcher, "PUT", "/api/users/x", json!({"tags": ""})),
        401,
        "monitoring PUT user",
    );
    assert_eq!(
        body,
        json!({"error": "not_authorised", "reason": "Not administrator user"})
    );
    expect(
        as_user(broker, watcher, "GET", "/api/queues/mine", Value::Null),
        200,
        "monitoring reads",
    );
    expect(
        as_user(broker, watcher, "PUT", "/api/queues/mine/q", Value::Null),
        401,
        "monitoring declares",
    );
    management_and_policymaker_callers(broker).await;
}

async fn management_and_policymaker_callers(broker: &Broker) {
    let mgr = ("mgr", "m");
    let body = expect(
        as_user(broker, mgr, "GET", "/api/queues/%2F", Value::Null),
        401,
        "management reads another vhost",
    );
    assert_eq!(
        body,
        json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"})
    );
    expect(
        as_user(broker, mgr, "GET", "/api/queues/mine", Value::Null),
        200,
        "own vhost",
    );
    expect(
        as_user(broker, mgr, "PUT", "/api/queues/mine/own.q", Value::Null),
        201,
        "permitted declare",
    );
    let body = expect(
        as_user(broker, mgr, "PUT", "/api/queues/mine/other", Value::Null),
        401,
        "configure refused",
    );
    assert_eq!(body["reason"], "Access refused.");
    expect(
        as_user(broker, mgr, "GET", "/api/users", Value::Null),
        401,
        "management lists users",
    );
    expect(
        as_user(broker, mgr, "GET", "/api/definitions", Value::Null),
        401,
        "management exports",
    );
    let policy = json!({"pattern": ".*", "definition": {"max-length": 3}});
    expect(
        as_user(broker, mgr, "PUT", "/api/policies/mine/p", policy.clone()),
        401,
        "management sets a policy",
    );
    expect(
        as_user(
            broker,
            ("pol", "p"),
            "PUT",
            "/api/policies/mine/p",
            policy.clone(),
        ),
        201,
        "policymaker in its vhost",
    );
    expect(
        as_user(
            broker,
            ("pol", "p"),
            "PUT",
            "/api/policies/%2F/p",
            policy.clone(),
        ),
        401,
        "policymaker elsewhere",
    );
    expect(
        as_user(
            broker,
            ("pol", "p"),
            "PUT",
            "/api/operator-policies/mine/p",
            policy,
        ),
        401,
        "operator policy",
    );
    expect(
        as_user(broker, mgr, "GET", "/api/policies/mine", Value::Null),
        200,
        "management lists policies",
    );
    // Nothing above made the broker unusable.
    Client::connect(broker).await.assert_usable().await;
}

async fn a_rabbitmq_export_is_imported_over_http(broker: &Broker) {
    let file = std::fs::read(fixture()).expect("fixture");
    let answer = send(
        broker,
        Some(GUEST),
        "POST",
        "/api/definitions",
        &file,
        "application/json",
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    let client = Client::connect_as(broker, "alice", "wonderland", "shop")
        .await
        .expect("alice logs in");
    let (channel, _events) = client.channel().await;
    publish(&channel, "shop.events", "order.created", b"hi").await;
    // The same file as the management UI uploads it.
    let mut form = b"--B0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\nContent-Type: application/json\r\n\r\n".to_vec();
    form.extend_from_slice(&file);
    form.extend_from_slice(b"\r\n--B0undary--\r\n");
    let answer = send(
        broker,
        Some(GUEST),
        "POST",
        "/api/definitions",
        &form,
        "multipart/form-data; boundary=B0undary",
    );
    assert_eq!(answer.status, 204, "{}", answer.body);
    let answer = send(
        broker,
        Some(GUEST),
        "POST",
        "/api/definitions",
        b"{\"users\": 3}",
        "application/json",
    );
    bad_request(answer, "wrong users type");
    let answer = send(
        broker,
        Some(GUEST),
        "POST",
        "/api/definitions",
        b"{",
        "application/json",
    );
    bad_request(answer, "malformed definitions");
    let answer = send(
        broker,
        Some(GUEST),
        "POST",
        "/api/definitions",
        b"{}",
        "text/plain",
    );
    assert_eq!(answer.status, 415);
}

async fn limits_are_set_listed_and_cleared(broker: &Broker) {
    assert_eq!(get_json(broker, "/api/vhost-limits"), json!([]));
    ok(
        broker,
        "PUT",
        "/api/vhost-limits/%2F/max-queues",
        json!({"value": 1}),
        204,
    );
    ok(
        broker,
        "PUT",
        "/api/vhost-limits/%2F/max-connections",
        json!({"value": 10}),
        204,
    );
    assert_eq!(
        get_json(broker, "/api/vhost-limits/%2F"),
        json!([{"vhost": "/", "value": {"max-queues": 1, "max-connections": 10}}])
    );
    ok(
        broker,
        "DELETE",
        "/api/vhost-limits/%2F/max-queues",
        Value::Null,
        204,
    );
    bad_request(
        call(
            broker,
            "PUT",
            "/api/vhost-limits/%2F/max-queues",
            json!({"value": "many"}),
        ),
        "not a number",
    );
    assert_eq!(
        bad_request(
            call(broker, "PUT", "/api/vhost-limits/%2F/max-queues", json!({})),
            "no value"
        ),
        "[{key_missing,value}]"
    );
}

async fn bindings_are_made_listed_and_removed(broker: &Broker) {
    ok(broker, "PUT", "/api/queues/%2F/audit", Value::Null, 201);
    let answer = call(
        broker,
        "POST",
        "/api/bindings/%2F/e/events/q/audit",
        json!({"routing_key": "order.*"}),
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.location.as_deref(), Some("audit/order.%252A"));
    let with_args = call(
        broker,
        "POST",
        "/api/bindings/%2F/e/events/q/audit",
        json!({"routing_key": "x", "arguments": {"a": 1}}),
    );
    let location = with_args.location.expect("location");
    let key = location.rsplit('/').next().expect("key").to_owned();
    let listed = get_json(broker, "/api/bindings/%2F/e/events/q/audit");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(listed
        .as_array()
        .into_iter()
        .flatten()
        .any(|b| b["properties_key"] == key));
    let one = get_json(broker, &format!("/api/bindings/%2F/e/events/q/audit/{key}"));
    assert_eq!(one["arguments"], json!({"a": 1}));
    let message = json!({"properties": {}, "routing_key": "order.new", "payload": "p",
        "payload_encoding": "string"});
    assert_eq!(
        ok(
            broker,
            "POST",
            "/api/exchanges/%2F/events/publish",
            message.clone(),
            200
        ),
        json!({"routed": true})
    );
    ok(
        broker,
        "DELETE",
        &format!("/api/bindings/%2F/e/events/q/audit/{key}"),
        Value::Null,
        204,
    );
    ok(
        broker,
        "DELETE",
        "/api/bindings/%2F/e/events/q/audit/order.%2A",
        Value::Null,
        204,
    );
    ok(
        broker,
        "DELETE",
        "/api/bindings/%2F/e/events/q/audit/order.%2A",
        Value::Null,
        404,
    );
    assert_eq!(
        ok(
            broker,
            "POST",
            "/api/exchanges/%2F/events/publish",
            message.clone(),
            200
        ),
        json!({"routed": false})
    );
    exchange_to_exchange_and_unknown_exchanges(broker, message).await;
}

async fn delete_conditions_are_kept(broker: &Broker) {
    // A queue with a consumer is not deleted with if-unused, one with messages not with if-empty.
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    publish(&channel, "", "audit", b"m").await;
    // The queue may hold earlier messages: wait until it holds any.
    client::within("a ready message", async {
        while client::ready(&channel, "audit").await == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let reason = bad_request(
        call(
            broker,
            "DELETE",
            "/api/queues/%2F/audit?if-empty=true",
            Value::Null,
        ),
        "if-empty",
    );
    assert!(reason.contains("not empty"), "{reason}");
    let _deliveries = consume(&channel, "audit", false).await;
    bad_request(
        call(
            broker,
            "DELETE",
            "/api/queues/%2F/audit?if-unused=true",
            Value::Null,
        ),
        "if-unused",
    );
}

async fn get_with_each_ack_mode(broker: &Broker, channel: &Channel) {
    let mut properties = BasicProperties::default();
    properties.with_correlation_id("c-7").with_delivery_mode(2);
    for body in [&b"one"[..], b"two", &[0xff, 0xfe]] {
        publish_with(channel, "", "work", properties.clone(), body).await;
    }
    // basic.publish has no answer: wait until the queue holds them before taking over HTTP.
    until_ready(channel, "work", 3).await;
    let take =
        |count: u64, ackmode: &str| json!({"count": count, "ackmode": ackmode, "encoding": "auto"});
    let peeked = ok(
        broker,
        "POST",
        "/api/queues/%2F/work/get",
        take(1, "ack_requeue_true"),
        200,
    );
    assert_eq!(peeked[0]["payload"], "one");
    assert_eq!(peeked[0]["redelivered"], false);
    assert_eq!(peeked[0]["message_count"], 2);
    assert_eq!(peeked[0]["payload_encoding"], "string");
    assert_eq!(peeked[0]["properties"]["correlation_id"], "c-7");
    assert_eq!(peeked[0]["properties"]["delivery_mode"], 2);
    let again = ok(
        broker,
        "POST",
        "/api/queues/%2F/work/get",
        take(1, "reject_requeue_true"),
        200,
    );
    assert_eq!(again[0]["payload"], "one");
    assert_eq!(again[0]["redelivered"], true);
    let taken = ok(
        broker,
        "POST",
        "/api/queues/%2F/work/get",
        take(1, "ack_requeue_false"),
        200,
    );
    assert_eq!(taken[0]["payload"], "one");
    let rejected = ok(
        broker,
        "POST",
        "/api/queues/%2F/work/get",
        take(1, "reject_requeue_false"),
        200,
    );
    assert_eq!(rejected[0]["payload"], "two");
    let binary = ok(
        broker,
        "POST",
        "/api/queues/%2F/work/get",
        take(5, "ack_requeue_true"),
        200,
    );
    assert_eq!(binary.as_array().map(Vec::len), Some(1));
    assert_eq!(binary[0]["payload_encoding"], "base64");
    assert_eq!(binary[0]["payload"], "//4=");
    let reason = bad_request(
        call(broker, "POST", "/api/queues/%2F/work/get", take(1, "peek")),
        "bad ackmode",
    );
    assert!(reason.contains("ack_requeue_true") && reason.contains("reject_requeue_false"));
    // The requeued message is still there for AMQP, redelivered.
    let (_, _, body) = get(channel, "work", true).await.expect("requeued message");
    assert_eq!(body, [0xff, 0xfe]);
    ok(
        broker,
        "DELETE",
        "/api/queues/%2F/work/contents",
        Value::Null,
        204,
    );
    ok(broker, "DELETE", "/api/queues/%2F/work", Value::Null, 204);
    ok(broker, "DELETE", "/api/queues/%2F/work", Value::Null, 404);
}

async fn hashed_and_passwordless_users(broker: &Broker) {
    // A user with a hash and no password, one without either.
    let hash = get_json(broker, "/api/auth/hash_password/pw2")["ok"].clone();
    let hashed = json!({"password_hash": hash, "hashing_algorithm":
        "rabbit_password_hashing_sha256", "tags": ""});
    ok(broker, "PUT", "/api/users/carol", hashed, 201);
    ok(
        broker,
        "PUT",
        "/api/users/dave",
        json!({"tags": "management"}),
        201,
    );
    ok(
        broker,
        "PUT",
        "/api/permissions/orders/carol",
        json!({"configure": "", "write": ".*", "read": ".*"}),
        201,
    );
    assert!(Client::connect_as(broker, "carol", "pw2", "orders")
        .await
        .is_ok());
    assert_eq!(
        get_json(broker, "/api/users/without-permissions")[0]["name"],
        "dave"
    );
    ok(
        broker,
        "POST",
        "/api/users/bulk-delete",
        json!({"users": ["carol", "dave", "nobody"]}),
        204,
    );
    ok(broker, "GET", "/api/users/carol", Value::Null, 404);
    ok(
        broker,
        "DELETE",
        "/api/permissions/orders/bob",
        Value::Null,
        204,
    );
    ok(
        broker,
        "DELETE",
        "/api/permissions/orders/bob",
        Value::Null,
        404,
    );
    assert!(Client::connect_as(broker, "bob", "s3cret", "orders")
        .await
        .is_err());
    ok(broker, "DELETE", "/api/users/bob", Value::Null, 204);
    ok(broker, "DELETE", "/api/users/bob", Value::Null, 404);
}

async fn permission_and_vhost_errors(broker: &Broker) {
    let reason = bad_request(
        call(
            broker,
            "PUT",
            "/api/permissions/%2F/guest",
            json!({"configure": ".*"}),
        ),
        "missing",
    );
    assert_eq!(reason, "[{key_missing,write},{key_missing,read}]");
    let reason = bad_request(
        call(
            broker,
            "PUT",
            "/api/permissions/nowhere/guest",
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        ),
        "unknown vhost",
    );
    assert_eq!(reason, "vhost_or_user_not_found");
    let reason = bad_request(
        call(
            broker,
            "PUT",
            "/api/permissions/%2F/nobody",
            json!({"configure": ".*", "write": ".*", "read": ".*"}),
        ),
        "unknown user",
    );
    assert_eq!(reason, "vhost_or_user_not_found");
    bad_request(
        call(
            broker,
            "PUT",
            "/api/permissions/%2F/guest",
            json!({"configure": "(", "write": ".*", "read": ".*"}),
        ),
        "bad regex",
    );
    let body = expect(
        call(broker, "PUT", "/api/queues/nowhere/q", Value::Null),
        404,
        "unknown vhost",
    );
    assert_eq!(
        body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
    expect(
        call(broker, "DELETE", "/api/users/nobody", Value::Null),
        404,
        "unknown user",
    );
    expect(
        call(broker, "DELETE", "/api/vhosts/nowhere", Value::Null),
        404,
        "unknown vhost",
    );
    expect(
        call(broker, "POST", "/api/vhosts/x", Value::Null),
        405,
        "wrong method",
    );
    names_and_sizes(broker).await;
}

async fn exchange_to_exchange_and_unknown_exchanges(broker: &Broker, message: Value) {
    ok(
        broker,
        "PUT",
        "/api/exchanges/%2F/tail",
        json!({"type": "fanout"}),
        201,
    );
    ok(
        broker,
        "POST",
        "/api/bindings/%2F/e/events/e/tail",
        json!({}),
        201,
    );
    ok(
        broker,
        "GET",
        "/api/bindings/%2F/e/events/e/tail/~",
        Value::Null,
        200,
    );
    let unknown = expect(
        call(
            broker,
            "POST",
            "/api/exchanges/%2F/nothing/publish",
            message,
        ),
        404,
        "unknown exchange",
    );
    assert_eq!(
        unknown,
        json!({"error": "not_found", "reason": "exchange_not_found"})
    );
    ok(
        broker,
        "DELETE",
        "/api/exchanges/%2F/events?if-unused=true",
        Value::Null,
        400,
    );
    ok(
        broker,
        "DELETE",
        "/api/exchanges/%2F/events",
        Value::Null,
        204,
    );
    ok(
        broker,
        "DELETE",
        "/api/exchanges/%2F/events",
        Value::Null,
        404,
    );
    delete_conditions_are_kept(broker).await;
}
