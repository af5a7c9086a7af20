//! Routing micro-benchmarks: one routing key through the binding table of a topic, a direct and
//! a fanout exchange, as `VHost::route` consults it for every publish. Each time is one route
//! (ns/route); the destinations go into a reused `Vec`, as on the publish path.
//!
//! The topic and direct tables hold `BINDING_COUNT` bindings, each to its own destination. Keys
//! look like `region.<r>.service.<s>` with `r` and `s` in `0..GRID_SIZE`. The topic table mixes
//! exact keys with `*` and `#` patterns, spread over regions and services by a fixed formula
//! (see `topic_binding_key`), so every run builds the same table.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hare::protocol::FieldValue;
use hare::routing::{BindingTable, ExchangeKind, HashInputs};

mod support;

/// Bindings in the topic and direct tables, and in the large fanout.
const BINDING_COUNT: u32 = 10_000;
/// Regions and services per key: `GRID_SIZE`² = `BINDING_COUNT` distinct (region, service).
const GRID_SIZE: u32 = 100;
const _: () = assert!(GRID_SIZE * GRID_SIZE == BINDING_COUNT);
/// A fanout of the size most deployments have, next to the 10k one.
const FANOUT_SMALL_COUNT: u32 = 16;

/// Routes to several destinations: its exact binding and the `region.*.service.17`,
/// `#.service.17` and `region.42.#` bindings (checked in `topic_table`).
const KEY_MATCHED: &[u8] = b"region.42.service.17";
const KEY_MATCHED_REGION: u32 = 42;
const KEY_MATCHED_SERVICE: u32 = 17;
/// Matches no binding, but still walks the root's `#` edge of the `#.service.<s>` patterns.
const KEY_UNMATCHED: &[u8] = b"zone.42.api.17";

type Table = BindingTable<u32, FieldValue>;

fn topic_route(c: &mut Criterion) {
    let table = topic_table();
    route_group(c, "topic_route_10k", &table);
}

fn direct_route(c: &mut Criterion) {
    let mut table = Table::new(ExchangeKind::Direct);
    for destination in 0..BINDING_COUNT {
        let (region, service) = grid_position(destination);
        let key = format!("region.{region}.service.{service}");
        bind(&mut table, key.as_bytes(), destination);
    }
    assert_eq!(routed(&table, KEY_MATCHED).len(), 1);
    assert!(routed(&table, KEY_UNMATCHED).is_empty());
    route_group(c, "direct_route_10k", &table);
}

fn fanout_route(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_route");
    group.throughput(Throughput::Elements(1));
    for count in [FANOUT_SMALL_COUNT, BINDING_COUNT] {
        let mut table = Table::new(ExchangeKind::Fanout);
        for destination in 0..count {
            bind(&mut table, b"", destination);
        }
        let expected = usize::try_from(count).expect("binding counts fit usize");
        assert_eq!(routed(&table, KEY_MATCHED).len(), expected);
        let mut out = Vec::with_capacity(expected);
        group.bench_function(BenchmarkId::from_parameter(count), |b| {
            b.iter(|| {
                out.clear();
                table.route::<&[u8]>(
                    black_box(KEY_MATCHED),
                    None,
                    &HashInputs::default(),
                    &mut out,
                );
                black_box(out.len())
            });
        });
        println!(
            "fanout_route/{count}: {} destinations, checksum {}",
            out.len(),
            checksum(&out)
        );
    }
    group.finish();
}

/// Benches routing `KEY_MATCHED` and `KEY_UNMATCHED` through `table`.
fn route_group(c: &mut Criterion, name: &str, table: &Table) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(64);
    for (label, key) in [("matched", KEY_MATCHED), ("unmatched", KEY_UNMATCHED)] {
        group.bench_function(label, |b| {
            b.iter(|| {
                out.clear();
                table.route::<&[u8]>(black_box(key), None, &HashInputs::default(), &mut out);
                black_box(out.len())
            });
        });
        println!(
            "{name}/{label}: {} destinations, checksum {}",
            out.len(),
            checksum(&out)
        );
    }
    group.finish();
}

/// The topic table: `BINDING_COUNT` bindings, one per grid position, each to its own
/// destination.
fn topic_table() -> Table {
    let mut table = Table::new(ExchangeKind::Topic);
    for destination in 0..BINDING_COUNT {
        let (region, service) = grid_position(destination);
        bind(&mut table, &topic_binding_key(region, service), destination);
    }
    assert_eq!(
        table.len(),
        usize::try_from(BINDING_COUNT).expect("binding counts fit usize")
    );
    let key = format!("region.{KEY_MATCHED_REGION}.service.{KEY_MATCHED_SERVICE}");
    assert_eq!(key.as_bytes(), KEY_MATCHED);
    let matched = routed(&table, KEY_MATCHED);
    let expected: Vec<u32> = (0..BINDING_COUNT)
        .filter(|&destination| {
            let (region, service) = grid_position(destination);
            topic_matches(region, service, KEY_MATCHED_REGION, KEY_MATCHED_SERVICE)
        })
        .collect();
    assert_eq!(
        matched, expected,
        "the trie agrees with the patterns' meaning"
    );
    assert!(
        matched.len() > 1,
        "the matched key reaches several bindings"
    );
    assert!(routed(&table, KEY_UNMATCHED).is_empty());
    table
}

/// The kind of binding at a grid position: about 80 % exact keys, 10 % `*` infix, 5 %
/// `#` suffix, 5 % `#` prefix. The formula mixes region and service so that no region or
/// service has only one kind.
fn topic_kind(region: u32, service: u32) -> u32 {
    (region * 7 + service * 13) % 20
}

fn topic_binding_key(region: u32, service: u32) -> Vec<u8> {
    match topic_kind(region, service) {
        0..=15 => format!("region.{region}.service.{service}"),
        16 | 17 => format!("region.*.service.{service}"),
        18 => format!("region.{region}.#"),
        _ => format!("#.service.{service}"),
    }
    .into_bytes()
}

/// Whether the binding at (`region`, `service`) matches `region.<key_region>.service.<key_service>`,
/// worked out from the pattern's meaning rather than the trie.
fn topic_matches(region: u32, service: u32, key_region: u32, key_service: u32) -> bool {
    match topic_kind(region, service) {
        0..=15 => region == key_region && service == key_service,
        16 | 17 | 19 => service == key_service,
        _ => region == key_region,
    }
}

fn grid_position(destination: u32) -> (u32, u32) {
    (destination % GRID_SIZE, destination / GRID_SIZE)
}

fn bind(table: &mut Table, key: &[u8], destination: u32) {
    let added = table
        .bind(key, Vec::new(), destination)
        .expect("bindings without arguments are always valid");
    assert!(added, "each (key, destination) is bound once");
}

fn routed(table: &Table, key: &[u8]) -> Vec<u32> {
    let mut out = Vec::new();
    table.route::<&[u8]>(key, None, &HashInputs::default(), &mut out);
    out
}

/// A sum over the routed destinations, printed so the result is visibly used.
fn checksum(destinations: &[u32]) -> u64 {
    destinations.iter().map(|&d| u64::from(d)).sum()
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = topic_route, direct_route, fanout_route
}
criterion_main!(benches);
