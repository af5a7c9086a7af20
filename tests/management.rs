//! The management HTTP API, black box: the real broker (tests/common), state made with a real
//! AMQP client (amqprs, tests/client), and requests from an HTTP client we did not write
//! (ureq), plus raw bytes for paths a client library would refuse to send.

mod client;
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use amqprs::channel::{BasicAckArguments, QueueBindArguments, QueueDeclareArguments};
use client::{consume, declare, get, publish, within, Client};
use common::http::{basic, exchange};
use common::{eventually, Broker};
use serde_json::{json, Value};

/// An HTTP answer: status, the headers tests look at, the body parsed as JSON (Null if empty).
struct Answer {
    status: u16,
    www_authenticate: Option<String>,
    body: Value,
}

/// Sends `method path` as guest (or with `auth`), blocking this test thread only.
fn request(
    broker: &Broker,
    method: &str,
    path: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut all = headers.to_vec();
    if let Some(auth) = auth {
        all.push(("authorization", auth));
    }
    let answer = exchange(broker.management, method, path, &all, &[]);
    Answer {
        status: answer.status,
        www_authenticate: answer.header("www-authenticate"),
        body: answer.json(),
    }
}

/// GET as guest; asserts 200 and returns the body.
fn get_ok(broker: &Broker, path: &str) -> Value {
    let answer = request(broker, "GET", path, Some(&basic("guest", "guest")), &[]);
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    answer.body
}

/// GET as guest, any status.
fn get_as_guest(broker: &Broker, path: &str) -> Answer {
    request(broker, "GET", path, Some(&basic("guest", "guest")), &[])
}

/// Sends a hand-written request line (for paths an HTTP client would normalise or refuse)
/// and returns the status code and body.
fn raw_get(broker: &Broker, path: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(broker.management).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic("guest", "guest")
    );
    stream.write_all(request.as_bytes()).expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("status line: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn not_found_body() -> Value {
    json!({"error": "Object Not Found", "reason": "Not Found"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_totals_follow_declares_and_publishes() {
    let broker = Broker::start(2);
    let before = get_ok(&broker, "/api/overview");
    assert_eq!(before["object_totals"]["queues"], 0);
    assert_eq!(before["rabbitmq_version"], "3.13.7");
    assert!(before["node"]
        .as_str()
        .is_some_and(|node| node.starts_with("hare@")));
    // Seven standard exchanges in the default vhost.
    assert_eq!(before["object_totals"]["exchanges"], 7);

    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("totals").finish()).await;
    for _ in 0..5 {
        publish(&channel, "", "totals", b"body").await;
    }
    let overview = eventually(Duration::from_secs(10), || {
        let overview = get_ok(&broker, "/api/overview");
        (overview["queue_totals"]["messages_ready"] == 5).then_some(overview)
    })
    .await;
    assert_eq!(overview["object_totals"]["queues"], 1);
    assert_eq!(overview["object_totals"]["connections"], 1);
    assert_eq!(overview["object_totals"]["channels"], 1);
    assert_eq!(overview["queue_totals"]["messages"], 5);
    assert_eq!(overview["message_stats"]["publish"], 5);
    assert!(overview["message_stats"]["publish_details"]["rate"].is_number());
    assert!(overview["listeners"]
        .as_array()
        .is_some_and(|listeners| listeners.iter().any(|l| l["port"] == broker.port())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_reports_ready_unacked_and_its_counters() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("work").finish()).await;
    for _ in 0..3 {
        publish(&channel, "", "work", b"12345").await;
    }
    client::until_ready(&channel, "work", 3).await;
    let got = get(&channel, "work", false).await.expect("a message");
    let queue = get_ok(&broker, "/api/queues/%2F/work");
    assert_eq!(queue["name"], "work");
    assert_eq!(queue["vhost"], "/");
    assert_eq!(queue["type"], "classic");
    assert_eq!(queue["messages_ready"], 2);
    assert_eq!(queue["messages_unacknowledged"], 1);
    assert_eq!(queue["messages"], 3);
    assert_eq!(queue["message_bytes"], 15);
    assert_eq!(queue["message_stats"]["publish"], 3);
    assert_eq!(queue["message_stats"]["get"], 1);
    assert_eq!(queue["effective_policy_definition"], json!({}));
    assert_eq!(queue["consumers"], 0);
    for field in [
        "durable",
        "auto_delete",
        "exclusive",
        "arguments",
        "node",
        "state",
    ] {
        assert!(queue.get(field).is_some(), "queue has {field}");
    }

    let delivery_tag = got.0.delivery_tag();
    channel
        .basic_ack(BasicAckArguments::new(delivery_tag, false))
        .await
        .expect("ack");
    let queue = eventually(Duration::from_secs(10), || {
        let queue = get_ok(&broker, "/api/queues/%2F/work");
        (queue["messages_unacknowledged"] == 0).then_some(queue)
    })
    .await;
    assert_eq!(queue["message_stats"]["ack"], 1);

    let reduced = get_ok(
        &broker,
        "/api/queues?disable_stats=true&enable_queue_totals=true",
    );
    assert_eq!(reduced[0]["messages_ready"], 2);
    assert!(reduced[0].get("message_stats").is_none());
    let answer = get_as_guest(&broker, "/api/queues/%2F/missing");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body, not_found_body());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_listed_and_delete_closes_one_with_320_and_the_reason() {
    let broker = Broker::start(2);
    let mut client = Client::connect(&broker).await;
    let connections = eventually(Duration::from_secs(10), || {
        let listed = get_ok(&broker, "/api/connections");
        (listed.as_array().map(Vec::len) == Some(1)).then_some(listed)
    })
    .await;
    let connection = &connections[0];
    assert_eq!(connection["user"], "guest");
    assert_eq!(connection["vhost"], "/");
    assert_eq!(connection["protocol"], "AMQP 0-9-1");
    assert_eq!(connection["state"], "running");
    assert!(connection["client_properties"]["capabilities"].is_object());
    assert!(connection["connected_at"]
        .as_u64()
        .is_some_and(|ms| ms > 1_600_000_000_000));
    assert!(connection["recv_oct"]
        .as_u64()
        .is_some_and(|octets| octets > 0));
    let name = connection["name"].as_str().expect("name").to_owned();
    assert!(name.contains(" -> "), "{name}");
    let encoded: String = url_encode(&name);
    let one = get_ok(&broker, &format!("/api/connections/{encoded}"));
    assert_eq!(one["name"], name);
    let by_vhost = get_ok(&broker, "/api/vhosts/%2F/connections");
    assert_eq!(by_vhost.as_array().map(Vec::len), Some(1));

    let answer = request(
        &broker,
        "DELETE",
        &format!("/api/connections/{encoded}"),
        Some(&basic("guest", "guest")),
        &[("X-Reason", "maintenance window")],
    );
    assert_eq!(answer.status, 204);
    client
        .expect_close(320, "CONNECTION_FORCED - maintenance window")
        .await;
    let answer = request(
        &broker,
        "DELETE",
        "/api/connections/nobody",
        Some(&basic("guest", "guest")),
        &[],
    );
    assert_eq!(answer.status, 404);
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_consumers_show_their_fields() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("consumed").finish()).await;
    let _deliveries = consume(&channel, "consumed", false).await;
    let consumers = eventually(Duration::from_secs(10), || {
        let listed = get_ok(&broker, "/api/consumers");
        (listed.as_array().map(Vec::len) == Some(1)).then_some(listed)
    })
    .await;
    let consumer = &consumers[0];
    assert_eq!(consumer["queue"], json!({"name": "consumed", "vhost": "/"}));
    assert_eq!(consumer["ack_required"], true);
    assert_eq!(consumer["exclusive"], false);
    assert_eq!(consumer["active"], true);
    assert_eq!(consumer["arguments"], json!({}));
    assert_eq!(consumer["channel_details"]["user"], "guest");
    assert!(consumer["consumer_tag"].is_string());
    assert!(consumer["prefetch_count"].is_number());
    assert!(consumer["consumer_timeout"].is_number());
    assert_eq!(get_ok(&broker, "/api/consumers/%2F"), consumers);

    let channels = get_ok(&broker, "/api/channels");
    let listed = &channels[0];
    assert_eq!(listed["number"], 1);
    assert_eq!(listed["consumer_count"], 1);
    assert_eq!(listed["confirm"], false);
    assert_eq!(listed["messages_unacknowledged"], 0);
    assert_eq!(listed["messages_unconfirmed"], 0);
    assert_eq!(listed["state"], "running");
    let name = listed["name"].as_str().expect("name");
    assert!(name.ends_with(" (1)"), "{name}");
    let one = get_ok(&broker, &format!("/api/channels/{}", url_encode(name)));
    assert_eq!(one["consumer_details"].as_array().map(Vec::len), Some(1));
    let connection = listed["connection_details"]["name"].as_str().expect("name");
    let of_connection = get_ok(
        &broker,
        &format!("/api/connections/{}/channels", url_encode(connection)),
    );
    assert_eq!(of_connection.as_array().map(Vec::len), Some(1));
    assert_eq!(
        get_ok(&broker, "/api/vhosts/%2F/channels")
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let queue = get_ok(&broker, "/api/queues/%2F/consumed");
    assert_eq!(queue["consumers"], 1);
    assert_eq!(queue["consumer_details"].as_array().map(Vec::len), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_sort_page_and_keep_only_columns() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    for name in ["q-b", "q-a", "q-c"] {
        declare(&channel, QueueDeclareArguments::new(name).finish()).await;
    }
    let sorted = get_ok(
        &broker,
        "/api/queues?sort=name&sort_reverse=true&columns=name,vhost",
    );
    assert_eq!(
        sorted,
        json!([
            {"name": "q-c", "vhost": "/"},
            {"name": "q-b", "vhost": "/"},
            {"name": "q-a", "vhost": "/"},
        ])
    );
    let paged = get_ok(
        &broker,
        "/api/queues/%2F?page=2&page_size=2&sort=name&columns=name",
    );
    assert_eq!(
        paged,
        json!({
            "filtered_count": 3, "item_count": 1, "items": [{"name": "q-c"}], "page": 2,
            "page_count": 2, "page_size": 2, "total_count": 3,
        })
    );
    let filtered = get_ok(
        &broker,
        "/api/queues?name=q-%5Bab%5D&use_regex=true&pagination=true",
    );
    assert_eq!(filtered["filtered_count"], 2);
    let nested = get_ok(
        &broker,
        "/api/exchanges/%2F?columns=name,message_stats.publish_in&sort=name",
    );
    // A dotted column keeps its nesting; an item without the field leaves it out.
    assert_eq!(nested[0], json!({"name": ""}));
    let nested = get_ok(
        &broker,
        "/api/queues?columns=name,arguments.x-none,garbage.x&sort=name",
    );
    assert_eq!(nested[0], json!({"name": "q-a"}));
    let answer = get_as_guest(&broker, "/api/queues?page=1&page_size=501");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body["error"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchanges_and_bindings_include_the_default_exchange() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("bound").finish()).await;
    within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new("bound", "amq.direct", "key")),
    )
    .await
    .expect("bind");
    publish(&channel, "amq.direct", "key", b"x").await;
    let default = get_ok(&broker, "/api/exchanges/%2F/amq.default");
    assert_eq!(default["name"], "");
    assert_eq!(default["type"], "direct");
    let direct = eventually(Duration::from_secs(10), || {
        let direct = get_ok(&broker, "/api/exchanges/%2F/amq.direct");
        (direct["message_stats"]["publish_in"] == 1).then_some(direct)
    })
    .await;
    assert_eq!(direct["message_stats"]["publish_out"], 1);

    let bindings = get_ok(&broker, "/api/queues/%2F/bound/bindings");
    assert_eq!(
        bindings,
        json!([
            {"source": "", "vhost": "/", "destination": "bound", "destination_type": "queue",
             "routing_key": "bound", "arguments": {}, "properties_key": "bound"},
            {"source": "amq.direct", "vhost": "/", "destination": "bound",
             "destination_type": "queue", "routing_key": "key", "arguments": {},
             "properties_key": "key"},
        ])
    );
    let between = get_ok(&broker, "/api/bindings/%2F/e/amq.direct/q/bound");
    assert_eq!(between.as_array().map(Vec::len), Some(1));
    let source = get_ok(&broker, "/api/exchanges/%2F/amq.direct/bindings/source");
    assert_eq!(source.as_array().map(Vec::len), Some(1));
    assert_eq!(
        get_ok(&broker, "/api/bindings/%2F")
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let answer = get_as_guest(&broker, "/api/bindings/%2F/e/amq.direct/e/amq.topic");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_unknown_paths_and_methods_get_rabbitmq_error_bodies() {
    let broker = Broker::start(1);
    let answer = request(&broker, "GET", "/api/overview", None, &[]);
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.www_authenticate.as_deref(),
        Some("Basic realm=\"RabbitMQ Management\"")
    );
    let answer = request(
        &broker,
        "GET",
        "/api/overview",
        Some(&basic("guest", "wrong")),
        &[],
    );
    assert_eq!(answer.status, 401);
    assert_eq!(
        answer.body,
        json!({"error": "not_authorised", "reason": "Login failed"})
    );
    let answer = get_as_guest(&broker, "/api/no-such-thing");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.body, not_found_body());
    let answer = request(
        &broker,
        "POST",
        "/api/overview",
        Some(&basic("guest", "guest")),
        &[],
    );
    assert_eq!(answer.status, 405);
    let answer = get_as_guest(&broker, "/api/queues/no-such-vhost");
    assert_eq!(answer.status, 404);
    assert_eq!(
        answer.body,
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
    let whoami = get_ok(&broker, "/api/whoami");
    assert_eq!(
        whoami,
        json!({"name": "guest", "tags": ["administrator"], "is_internal_user": true})
    );
    for path in [
        "/api/extensions",
        "/api/feature-flags",
        "/api/deprecated-features",
    ] {
        assert_eq!(get_ok(&broker, path), json!([]));
    }
}

/// Malformed escapes and traversal-looking names are names that do not exist: 404 JSON, and
/// the broker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_traversal_paths_are_404_json() {
    let broker = Broker::start(1);
    for path in [
        "/api/queues/%2F/%zz",
        "/api/queues/%2F/%",
        "/api/queues/%FF%FE/q",
        "/api/queues/%2F/..%2F..%2Fetc%2Fpasswd",
        "/api/exchanges/..%2F/x",
        "/api/../api/overview/..",
        "/api/connections/%00",
    ] {
        let (status, body) = raw_get(&broker, path);
        assert_eq!(status, 404, "{path}");
        // Object Not Found, or vhost_not_found for a vhost segment that names none.
        assert!(body["error"].is_string(), "{path}: {body}");
        assert!(body["reason"].is_string(), "{path}: {body}");
    }
    let long = format!("/api/queues/%2F/{}", "a".repeat(300));
    assert_eq!(raw_get(&broker, &long).0, 404);
    assert_eq!(
        get_ok(&broker, "/api/overview")["object_totals"]["queues"],
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_and_nodes_answer_with_real_values() {
    let broker = Broker::start(2);
    let ok = json!({"status": "ok"});
    assert_eq!(get_ok(&broker, "/api/health/checks/alarms"), ok);
    assert_eq!(get_ok(&broker, "/api/health/checks/local-alarms"), ok);
    assert_eq!(get_ok(&broker, "/api/health/checks/virtual-hosts"), ok);
    assert_eq!(
        get_ok(&broker, "/api/health/checks/node-is-quorum-critical"),
        ok
    );
    assert_eq!(get_ok(&broker, "/api/aliveness-test/%2F"), ok);
    let port = get_ok(
        &broker,
        &format!("/api/health/checks/port-listener/{}", broker.port()),
    );
    assert_eq!(port, json!({"status": "ok", "port": broker.port()}));
    let missing = get_as_guest(&broker, "/api/health/checks/port-listener/1");
    assert_eq!(missing.status, 503);
    assert_eq!(missing.body["status"], "failed");
    assert_eq!(
        get_as_guest(&broker, "/api/health/checks/port-listener/x").status,
        400
    );
    assert_eq!(
        get_ok(&broker, "/api/health/checks/protocol-listener/amqp091")["status"],
        "ok"
    );
    assert_eq!(
        get_as_guest(&broker, "/api/health/checks/protocol-listener/stomp").status,
        503
    );
    assert_eq!(
        get_as_guest(&broker, "/api/aliveness-test/nowhere").status,
        404
    );

    let nodes = get_ok(&broker, "/api/nodes");
    let node = &nodes[0];
    assert_eq!(node["os_pid"], broker.pid().to_string());
    assert!(node["mem_used"]
        .as_u64()
        .is_some_and(|bytes| bytes > 1_000_000));
    assert!(node["disk_free"].as_u64().is_some_and(|bytes| bytes > 0));
    assert!(node["fd_used"].as_u64().is_some_and(|count| count > 0));
    assert!(node["fd_total"].as_u64().is_some_and(|count| count > 0));
    for field in [
        "mem_limit",
        "mem_alarm",
        "disk_free_limit",
        "disk_free_alarm",
        "proc_total",
        "run_queue",
        "processors",
        "rates_mode",
        "enabled_plugins",
        "being_drained",
        "uptime",
    ] {
        assert!(node.get(field).is_some(), "node has {field}");
    }
    let name = node["name"].as_str().expect("name");
    assert_eq!(
        get_ok(&broker, &format!("/api/nodes/{}", url_encode(name)))["name"],
        name
    );
    assert_eq!(
        get_as_guest(&broker, "/api/nodes/rabbit@elsewhere").status,
        404
    );
}

/// Rates come from the difference between the last two periodic samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_follow_the_periodic_samples() {
    let broker = Broker::start_with(2, &["--stats-interval-ms", "200"]);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, QueueDeclareArguments::new("rated").finish()).await;
    let rate = async {
        for _ in 0..200 {
            publish(&channel, "", "rated", b"m").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
            let queue = get_ok(&broker, "/api/queues/%2F/rated");
            let rate = queue["message_stats"]["publish_details"]["rate"]
                .as_f64()
                .unwrap_or(0.0);
            if rate > 0.0 {
                return rate;
            }
        }
        panic!("the publish rate stayed zero");
    };
    assert!(within("a publish rate", rate).await > 0.0);
}

/// A long list is filtered, sorted, paged and serialised off shard 0 (from 1,000 items): the
/// answer is the same as for a short one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_list_is_sorted_and_paged_like_a_short_one() {
    let broker = Broker::start(2);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    for index in 0..1200 {
        let name = format!("long-{index:04}");
        declare(&channel, QueueDeclareArguments::new(&name).finish()).await;
    }
    let paged = get_ok(
        &broker,
        "/api/queues/%2F?page=3&page_size=500&sort=name&sort_reverse=true&columns=name",
    );
    assert_eq!(paged["total_count"], 1200);
    assert_eq!(paged["item_count"], 200);
    assert_eq!(paged["items"][0], json!({"name": "long-0199"}));
    assert_eq!(paged["items"][199], json!({"name": "long-0000"}));
    let bad = get_as_guest(&broker, "/api/queues?name=%5B&use_regex=true");
    assert_eq!(bad.status, 400, "{}", bad.body);
    let all = get_ok(&broker, "/api/queues?columns=name,messages");
    assert_eq!(all.as_array().map(Vec::len), Some(1200));
}
