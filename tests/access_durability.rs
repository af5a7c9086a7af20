//! Users, vhosts, permissions, topic permissions, policies, operator policies and vhost limits
//! made over the management API are durable the moment the API answers: the broker is killed
//! with SIGKILL right after a seeded number of acknowledged changes, and every change it
//! acknowledged is there after the restart (and nothing it never received).

mod client;
mod common;

use client::Client;
use common::http::send;
use common::Broker;
use serde_json::{json, Value};

/// One change: method, path, body.
type Change = (&'static str, String, Value);

/// The changes, in order; later ones build on earlier ones.
fn changes() -> Vec<Change> {
    let mut changes = vec![(
        "PUT",
        "/api/vhosts/shop".to_owned(),
        json!({"description": "the shop"}),
    )];
    for index in 0..4 {
        let user = format!("user{index}");
        changes.push((
            "PUT",
            format!("/api/users/{user}"),
            json!({"password": format!("pw{index}"), "tags": "monitoring"}),
        ));
        changes.push((
            "PUT",
            format!("/api/permissions/shop/{user}"),
            json!({"configure": format!("^{user}\\."), "write": ".*", "read": ".*"}),
        ));
    }
    changes.push((
        "PUT",
        "/api/topic-permissions/shop/user0".to_owned(),
        json!({"exchange": "amq.topic", "write": "^orders\\.", "read": ".*"}),
    ));
    changes.push((
        "PUT",
        "/api/policies/shop/short".to_owned(),
        json!({"pattern": "^tmp\\.", "definition": {"message-ttl": 60000}, "apply-to": "queues"}),
    ));
    changes.push((
        "PUT",
        "/api/operator-policies/shop/cap".to_owned(),
        json!({"pattern": ".*", "definition": {"max-length": 1000}, "apply-to": "queues"}),
    ));
    changes.push((
        "PUT",
        "/api/vhost-limits/shop/max-queues".to_owned(),
        json!({"value": 50}),
    ));
    changes.push(("DELETE", "/api/users/user3".to_owned(), Value::Null));
    changes
}

fn apply(broker: &Broker, (method, path, body): &Change) {
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let answer = send(
        broker,
        Some(("guest", "guest")),
        method,
        path,
        &bytes,
        "application/json",
    );
    assert!(
        (200..300).contains(&answer.status),
        "{method} {path}: {} {}",
        answer.status,
        answer.body
    );
}

fn definitions(broker: &Broker) -> Value {
    let answer = send(
        broker,
        Some(("guest", "guest")),
        "GET",
        "/api/definitions",
        &[],
        "application/json",
    );
    assert_eq!(answer.status, 200);
    answer.body
}

fn names(definitions: &Value, list: &str, key: &str) -> Vec<String> {
    let mut names: Vec<String> = definitions[list]
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| item[key].as_str().unwrap_or_default().to_owned())
        .collect();
    names.sort();
    names
}

/// What `definitions` must hold after the first `done` changes (and only those).
async fn check_after(broker: &Broker, done: usize) {
    let all = changes();
    let expected = Broker::start(1);
    for change in &all[..done] {
        apply(&expected, change);
    }
    let want = definitions(&expected);
    let have = definitions(broker);
    for (list, key) in [
        ("vhosts", "name"),
        ("users", "name"),
        ("permissions", "user"),
        ("topic_permissions", "user"),
        ("policies", "name"),
        ("operator_policies", "name"),
    ] {
        assert_eq!(
            names(&have, list, key),
            names(&want, list, key),
            "{list} after {done} acknowledged changes"
        );
    }
    let limits = |d: &Value| {
        d["vhosts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"] == "shop")
            .map(|v| v["limits"].clone())
    };
    assert_eq!(limits(&have), limits(&want), "limits after {done} changes");
    // A user whose permission was acknowledged logs in with the password it was given.
    if done > 2 {
        Client::connect_as(broker, "user0", "pw0", "shop")
            .await
            .expect("user0 logs in after the restart");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_operator_changes_survive_kill_9_at_seeded_points() {
    let total = changes().len();
    for seed in [3_u64, 7, 11] {
        let done =
            1 + usize::try_from(seed * 7919 % u64::try_from(total).expect("fits")).expect("fits");
        let broker = Broker::start(2);
        for change in &changes()[..done] {
            apply(&broker, change);
        }
        let data_dir = broker.kill9();
        let broker = Broker::start_in(&data_dir, 2);
        check_after(&broker, done).await;
        // And once more after a clean restart (the log replays, then a new generation).
        let broker = broker.restart();
        check_after(&broker, done).await;
    }
}
