//! The web UI as a browser fetches it (docs/web-ui.md): the page, its modules and their
//! caching headers, from the real broker with an HTTP client we did not write (ureq); and the
//! overview's samples that its charts draw, with state made by a real AMQP client (amqprs).
//! What the pages show and do is tested in a real Chromium (tests/interop/webui).

mod client;
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use amqprs::FieldValue;
use client::{declare, publish, queue_with, Client};
use common::http::{basic, exchange, Exchange};
use common::{eventually, Broker};

fn get(broker: &Broker, path: &str, headers: &[(&str, &str)]) -> Exchange {
    exchange(broker.management, "GET", path, headers, &[])
}

/// Every `/ui/…` path the page names.
fn asset_paths(page: &str) -> Vec<String> {
    page.split('"')
        .filter(|piece| piece.starts_with("/ui/"))
        .map(str::to_owned)
        .collect()
}

/// The modules a script imports (`from './x.js'`), as paths beside it.
fn imports(script: &str, beside: &str) -> BTreeSet<String> {
    let directory = &beside[..=beside.rfind('/').expect("a path")];
    script
        .split("from './")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .map(|name| format!("{directory}{name}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_every_module_it_loads_are_served_with_caching_headers() {
    let broker = Broker::start(1);
    // No credentials needed for the page: it asks for them itself.
    let page = get(&broker, "/", &[]);
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("cache-control").as_deref(), Some("no-cache"));
    let etag = page.header("etag").expect("the page has an ETag");
    let again = get(&broker, "/", &[("if-none-match", &etag)]);
    assert_eq!(again.status, 304);
    assert!(again.text.is_empty());
    assert!(page
        .header("content-security-policy")
        .is_some_and(|csp| csp.contains("default-src 'self'")));

    // Follow the module graph from the page: every import must be served.
    let mut pending = asset_paths(&page.text);
    assert!(pending.iter().any(|path| path.ends_with("/app.js")));
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let asset = get(&broker, &path, &[]);
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(
            asset.header("cache-control").as_deref(),
            Some("public, max-age=31536000, immutable"),
            "{path}"
        );
        if path.ends_with(".js") {
            assert!(asset
                .header("content-type")
                .is_some_and(|kind| kind.starts_with("text/javascript")));
            pending.extend(imports(&asset.text, &path));
        }
        let etag = asset.header("etag").expect("assets have ETags");
        assert_eq!(get(&broker, &path, &[("if-none-match", &etag)]).status, 304);
    }
    for module in [
        "core.js",
        "chart.js",
        "table.js",
        "forms.js",
        "queues.js",
        "admin.js",
    ] {
        assert!(seen.iter().any(|path| path.ends_with(module)), "{module}");
    }

    assert_eq!(get(&broker, "/ui/x/missing.js", &[]).status, 404);
    let head = exchange(broker.management, "HEAD", "/", &[], &[]);
    assert_eq!(head.status, 200);
    assert_eq!(
        exchange(broker.management, "POST", "/", &[], &[]).status,
        405
    );
    // The API still wants credentials.
    assert_eq!(get(&broker, "/api/overview", &[]).status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_answers_samples_for_rates_and_lengths_and_counts_dead_letters() {
    let broker = Broker::start_with(2, &["--stats-interval-ms", "200"]);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    declare(&channel, queue_with("kept", false, &[])).await;
    // Expires at once into "kept" through the default exchange.
    let dying = [
        ("x-message-ttl", FieldValue::I(0)),
        (
            "x-dead-letter-exchange",
            FieldValue::S("".try_into().expect("text")),
        ),
        (
            "x-dead-letter-routing-key",
            FieldValue::S("kept".try_into().expect("text")),
        ),
    ];
    declare(&channel, queue_with("dying", false, &dying)).await;
    for _ in 0..5 {
        publish(&channel, "", "dying", b"body").await;
    }
    let auth = basic("guest", "guest");
    let path = "/api/overview?msg_rates_age=60&msg_rates_incr=1&lengths_age=60&lengths_incr=1";
    let overview = eventually(Duration::from_secs(10), || {
        let overview = get(&broker, path, &[("authorization", &auth)]).json();
        let samples = &overview["queue_totals"]["messages_ready_details"]["samples"];
        let publishes = &overview["message_stats"]["publish_details"]["samples"];
        let two = publishes.as_array().is_some_and(|all| all.len() >= 2);
        (samples[0]["sample"] == 5 && overview["message_stats"]["dead_lettered"] == 5 && two)
            .then_some(overview)
    })
    .await;
    let publish_samples = overview["message_stats"]["publish_details"]["samples"]
        .as_array()
        .expect("publish samples")
        .clone();
    assert_eq!(publish_samples[0]["sample"], 5, "newest first");
    let timestamps: Vec<u64> = publish_samples
        .iter()
        .map(|sample| sample["timestamp"].as_u64().expect("ms timestamp"))
        .collect();
    assert!(timestamps.windows(2).all(|pair| pair[0] > pair[1]));
    for series in [
        "confirm",
        "ack",
        "deliver_get",
        "redeliver",
        "drop_unroutable",
    ] {
        assert!(
            overview["message_stats"][format!("{series}_details")]["samples"].is_array(),
            "{series}"
        );
    }
    assert!(overview["message_stats"]["dead_lettered_details"]["rate"].is_number());
    // Without the ages, the overview is as before: no samples.
    let plain = get(&broker, "/api/overview", &[("authorization", &auth)]).json();
    assert!(plain["message_stats"]["publish_details"]["samples"].is_null());
}
