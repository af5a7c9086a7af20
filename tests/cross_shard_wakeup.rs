//! Regression probe for lost cross-shard wake-ups: a request that crosses the shard mesh must
//! be answered without any other activity on the broker.

mod client;
mod common;

use std::time::Duration;

use amqprs::channel::ExchangeDeclareArguments;
use client::Client;
use common::Broker;

/// Regression: with 2 shards and glommio's preempt timer at 1 ms, executors parked with runnable
/// tasks, so cross-shard round trips (exchange.declare from shard 1 → shard 0 → back) stalled
/// until an unrelated event woke a shard. Seen in about half the runs of this test with eight
/// brokers busy in parallel on 2 cores. Fixed by the 100 ms preempt timer and the shard wake
/// pipes (`shard::waker`).
async fn declares_from_the_second_shard(rounds: usize) {
    let broker = Broker::start(2);
    let _first = Client::connect(&broker).await;
    let second = Client::connect(&broker).await;
    let (channel, _) = second.channel().await;
    for round in 0..rounds {
        let declare = ExchangeDeclareArguments::new(&format!("x{round}"), "direct");
        match tokio::time::timeout(Duration::from_secs(5), channel.exchange_declare(declare)).await
        {
            Ok(result) => result.expect("exchange.declare"),
            Err(_) => panic!("declare {round} got no declare-ok within 5 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cross_shard_round_trips_never_stall() {
    let probes: Vec<_> = (0..8)
        .map(|_| tokio::spawn(declares_from_the_second_shard(300)))
        .collect();
    for probe in probes {
        probe.await.expect("probe");
    }
}
