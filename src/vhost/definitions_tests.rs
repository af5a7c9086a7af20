use std::path::PathBuf;

use bytes::Bytes;

use super::*;
use crate::ids::{ConnectionId, ExchangeId, QueueId, ShardId};
use crate::protocol::FieldTable;
use crate::protocol::FieldValue;
use crate::routing::ExchangeKind;
use crate::vhost::definitions_codec::{
    DESTINATION_EXCHANGE, DESTINATION_QUEUE, EXCHANGE_AUTO_DELETE,
};
use crate::vhost::rules::{Change, ExchangeDeclare, QueueDeclare};
use crate::vhost::DEFAULT_VHOST;

fn short(s: &str) -> ShortStr {
    ShortStr::copy_from_str(s).unwrap()
}

fn table(pairs: Vec<(&str, FieldValue)>) -> FieldTable {
    pairs.into_iter().map(|(k, v)| (short(k), v)).collect()
}

fn long(s: &'static str) -> FieldValue {
    FieldValue::LongStr(Bytes::from_static(s.as_bytes()))
}

fn exchange(id: u64, name: &str, kind: ExchangeKind, arguments: FieldTable) -> ExchangeDefinition {
    ExchangeDefinition {
        delayed: false,
        id: ExchangeId(id),
        name: short(name),
        kind,
        durable: true,
        auto_delete: id.is_multiple_of(2),
        internal: kind == ExchangeKind::Fanout,
        arguments,
    }
}

fn queue(id: u64, name: &str, owner_shard: u16) -> QueueDefinition {
    QueueDefinition {
        id: QueueId(id),
        name: short(name),
        owner_shard: ShardId(owner_shard),
        durable: true,
        exclusive_owner: None,
        auto_delete: owner_shard == 3,
        arguments: table(vec![("x-queue-type", long("classic"))]),
    }
}

fn binding(from: &str, to: DestinationName, key: &str, args: FieldTable) -> BindingDefinition {
    BindingDefinition {
        source: short(from),
        destination: to,
        routing_key: short(key),
        arguments: args,
    }
}

fn no_args() -> FieldTable {
    FieldTable::new()
}

fn to_queue(name: &str) -> DestinationName {
    DestinationName::Queue(short(name))
}

fn to_exchange(name: &str) -> DestinationName {
    DestinationName::Exchange(short(name))
}

/// Every exchange kind, nested argument tables, owner shards, exchange-to-exchange bindings.
fn sample() -> Definitions {
    let inner = FieldValue::Table(table(vec![("deep", FieldValue::I64(-7))]));
    let list = FieldValue::Array(vec![FieldValue::U8(1), long("two"), FieldValue::Void]);
    let nested = table(vec![
        ("inner", inner),
        ("list", list),
        ("when", FieldValue::Timestamp(1_700_000_000)),
        ("scaled", FieldValue::Decimal { scale: 2, value: 5 }),
    ]);
    let alternate = table(vec![("alternate-exchange", long("lost"))]);
    let hash_header = table(vec![("hash-header", long("customer"))]);
    let headers = table(vec![
        ("x-match", long("any")),
        ("size", FieldValue::I32(42)),
    ]);
    Definitions {
        next_id: 1010,
        shard_count: 4,
        vhost: short(DEFAULT_VHOST),
        exchanges: vec![
            exchange(1000, "orders", ExchangeKind::Direct, alternate),
            exchange(1001, "lost", ExchangeKind::Fanout, no_args()),
            exchange(1002, "events", ExchangeKind::Topic, nested),
            exchange(1003, "docs", ExchangeKind::Headers, no_args()),
            exchange(1008, "shards", ExchangeKind::ConsistentHash, hash_header),
        ],
        queues: vec![
            queue(1004, "work", 0),
            queue(1005, "audit", 3),
            queue(1007, "all", 1),
        ],
        bindings: vec![
            binding("orders", to_queue("work"), "new", no_args()),
            binding("orders", to_exchange("events"), "new", no_args()),
            binding("lost", to_queue("audit"), "", no_args()),
            binding("events", to_queue("all"), "#", no_args()),
            binding("docs", to_queue("audit"), "", headers),
            binding("amq.topic", to_queue("work"), "*.urgent", no_args()),
            binding("events", to_exchange("amq.fanout"), "a.#", no_args()),
            binding("shards", to_queue("work"), "3", no_args()),
            binding("shards", to_queue("audit"), "1", no_args()),
        ],
    }
}

/// What `decode` says is invalid about `file`.
fn invalid_what(file: &[u8]) -> &'static str {
    match Definitions::decode(file) {
        Err(DefinitionsError::Invalid { what }) => what,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn round_trip_keeps_everything() {
    let definitions = sample();
    let file = definitions.encode();
    assert_eq!(Definitions::decode(&file).unwrap(), definitions);
    assert_eq!(file, definitions.encode(), "encoding is deterministic");
}

/// Exact bytes of a small file: every field little-endian except inside the AMQP tables.
#[test]
fn a_small_file_has_the_documented_bytes() {
    let definitions = Definitions {
        next_id: 1002,
        shard_count: 2,
        vhost: short("/"),
        exchanges: vec![exchange(1000, "x", ExchangeKind::Headers, no_args())],
        queues: vec![queue(1001, "q", 1)],
        bindings: vec![binding("x", to_queue("q"), "k", no_args())],
    };
    let body: Vec<u8> = [
        &[0xea, 3, 0, 0, 0, 0, 0, 0][..], // next_id 1002
        &[2, 0],                          // shard_count
        &[1, b'/'],                       // vhost
        &[1, 0, 0, 0],                    // one exchange
        &[0xe8, 3, 0, 0, 0, 0, 0, 0],     // id 1000
        &[1, b'x', 4, EXCHANGE_AUTO_DELETE],
        &[4, 0, 0, 0, 0, 0, 0, 0], // table: LE length 4, then the empty AMQP table
        &[1, 0, 0, 0],             // one queue
        &[0xe9, 3, 0, 0, 0, 0, 0, 0, 1, b'q', 1, 0, 0], // id 1001, name, owner shard 1, flags
        &[29, 0, 0, 0, 0, 0, 0, 25], // table: LE length, then the AMQP table's BE length
        &[12],
        b"x-queue-type",
        b"S",
        &[0, 0, 0, 7],
        b"classic",
        &[1, 0, 0, 0], // one binding
        &[1, b'x', DESTINATION_QUEUE, 1, b'q', 1, b'k'],
        &[4, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    let mut expected = b"HAREDEF\0".to_vec();
    expected.extend_from_slice(&[1, 0, 0, 0]); // version 1, reserved
    expected.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
    expected.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    expected.extend_from_slice(&body);
    assert_eq!(definitions.encode(), expected);
}

#[test]
fn every_single_bit_flip_is_detected() {
    let file = sample().encode();
    for index in 0..file.len() {
        for bit in 0..8 {
            let mut corrupt = file.clone();
            corrupt[index] ^= 1 << bit;
            let unnoticed = Definitions::decode(&corrupt).is_ok();
            assert!(
                !unnoticed,
                "flip of bit {bit} in byte {index} went unnoticed"
            );
        }
    }
}

#[test]
fn truncation_at_every_byte_errs() {
    let file = sample().encode();
    for len in 0..file.len() {
        assert!(Definitions::decode(&file[..len]).is_err(), "{len} bytes");
    }
    let body = &file[HEADER_SIZE_BYTES..];
    for len in 0..body.len() {
        match Definitions::decode(&seal(&body[..len])) {
            Err(DefinitionsError::Truncated { offset }) => {
                // A file offset, inside the resealed body.
                assert!((HEADER_SIZE_BYTES..=HEADER_SIZE_BYTES + len).contains(&offset));
            }
            other => panic!("body prefix of {len} bytes gave {other:?}"),
        }
    }
}

#[test]
fn header_errors_are_specific() {
    use DefinitionsError as E;
    let file = sample().encode();
    let patched = |at: usize, value: u8| {
        let mut bad = file.clone();
        bad[at] = value;
        Definitions::decode(&bad)
    };
    assert!(matches!(patched(0, b'X'), Err(E::BadMagic)));
    assert!(matches!(
        patched(8, 2),
        Err(E::UnsupportedVersion { version: 2 })
    ));
    let reserved = "reserved header field is not zero";
    assert!(matches!(patched(11, 1), Err(E::Invalid { what }) if what == reserved));
    assert!(matches!(patched(16, !file[16]), Err(E::Checksum { .. })));
    assert!(matches!(
        patched(12, file[12] - 1),
        Err(E::Invalid {
            what: "bytes after the body"
        })
    ));
    assert!(matches!(
        patched(12, file[12] + 1),
        Err(E::Truncated { offset: 20 })
    ));
    let mut trailing = file[HEADER_SIZE_BYTES..].to_vec();
    trailing.push(0);
    assert_eq!(
        invalid_what(&seal(&trailing)),
        "bytes after the last binding"
    );
}

#[test]
fn inconsistent_definitions_are_refused() {
    type Corruption = fn(&mut Definitions);
    let cases: [(&str, Corruption); 19] = [
        ("shard count is zero", |d| d.shard_count = 0),
        ("next id below the first dynamic id", |d| d.next_id = 999),
        ("empty vhost name", |d| d.vhost = short("")),
        ("queue owner shard not below the shard count", |d| {
            d.queues[0].owner_shard = ShardId(4)
        }),
        ("id not below next id", |d| d.next_id = 1007),
        ("id below the first dynamic id", |d| {
            d.exchanges[0].id = ExchangeId(5)
        }),
        ("id repeated", |d| d.queues[1].id = QueueId(1000)),
        ("exchange name repeated or standard", |d| {
            d.exchanges[1].name = short("orders")
        }),
        ("exchange name repeated or standard", |d| {
            d.exchanges[1].name = short("amq.topic")
        }),
        ("stored exchange has no name", |d| {
            d.exchanges[1].name = short("")
        }),
        ("queue name repeated", |d| d.queues[1].name = short("work")),
        ("stored queue has no name", |d| d.queues[1].name = short("")),
        ("binding destination does not exist", |d| {
            d.bindings[0].destination = to_queue("gone")
        }),
        ("binding destination does not exist", |d| {
            d.bindings[1].destination = to_exchange("x")
        }),
        ("binding source does not exist", |d| {
            d.bindings[0].source = short("gone")
        }),
        ("binding with the default exchange", |d| {
            d.bindings[0].source = short("")
        }),
        ("binding with the default exchange", |d| {
            d.bindings[1].destination = to_exchange("")
        }),
        ("binding repeated", |d| {
            d.bindings.push(d.bindings[0].clone())
        }),
        ("binding arguments refused by the exchange kind", |d| {
            d.bindings[4].arguments = table(vec![("x-match", long("most"))])
        }),
    ];
    for (expected, corrupt) in cases {
        let mut definitions = sample();
        corrupt(&mut definitions);
        assert_eq!(invalid_what(&seal(&definitions.encode_body())), expected);
        let refused = std::panic::catch_unwind(|| definitions.encode());
        assert!(
            refused.is_err(),
            "encode refuses what decode would: {expected}"
        );
    }
}

#[test]
fn a_delayed_exchange_round_trips() {
    let mut delayed = exchange(1000, "later", ExchangeKind::Topic, no_args());
    delayed.delayed = true;
    let definitions = Definitions {
        exchanges: vec![delayed],
        queues: Vec::new(),
        bindings: Vec::new(),
        ..sample()
    };
    let decoded = Definitions::decode(&seal(&definitions.encode_body())).expect("decodes");
    assert!(decoded.exchanges[0].delayed);
    assert_eq!(decoded.exchanges[0].kind, ExchangeKind::Topic);
}

#[test]
fn unknown_codes_are_refused() {
    let definitions = Definitions {
        exchanges: vec![exchange(1000, "x", ExchangeKind::Direct, no_args())],
        queues: Vec::new(),
        bindings: vec![binding("x", to_exchange("amq.direct"), "", no_args())],
        ..sample()
    };
    let body = definitions.encode_body();
    let kind_at = 8 + 2 + 2 + 4 + 8 + 2;
    let binding_kind_at = body.len() - (4 + 4) - 1 - 11 - 1;
    assert_eq!(body[binding_kind_at], DESTINATION_EXCHANGE);
    for (at, value, what) in [
        (kind_at, 0, "unknown exchange kind"),
        (kind_at, 7, "unknown exchange kind"),
        (kind_at + 1, 8, "unknown exchange flag bits"),
        (binding_kind_at, 3, "unknown binding destination kind"),
    ] {
        let mut bad = body.clone();
        bad[at] = value;
        assert_eq!(invalid_what(&seal(&bad)), what);
    }
}

#[test]
fn random_bytes_never_panic() {
    let seed = fastrand::u64(..);
    println!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..20_000 {
        let len = rng.usize(0..160);
        let bytes: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
        let _ = Definitions::decode(&bytes);
        let _ = Definitions::decode(&seal(&bytes));
    }
}

/// Mutated bodies with a valid checksum reach the validator; whatever it accepts must apply
/// to a fresh registry without tripping `VHost::apply`'s assertions.
#[test]
fn mutated_bodies_never_panic_and_accepted_ones_apply() {
    let seed = fastrand::u64(..);
    println!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let body = sample().encode_body();
    let mut accepted = 0;
    for _ in 0..20_000 {
        let mut mutated = body.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..mutated.len());
            mutated[at] = rng.u8(..);
        }
        let Ok(definitions) = Definitions::decode(&seal(&mutated)) else {
            continue;
        };
        accepted += 1;
        let mut registry = Registry::new();
        if let Some(vhost) = registry.vhost_mut(&definitions.vhost) {
            for delta in definitions.deltas() {
                vhost.apply(&delta);
            }
        }
        let _ = definitions.encode();
    }
    assert!(accepted > 0, "some mutations (names, keys) stay valid");
}

fn declare_exchange(change: &mut Change<'_>, name: &str, kind: &str, durable: bool) {
    let request = ExchangeDeclare {
        name: short(name),
        kind: short(kind),
        passive: false,
        durable,
        auto_delete: false,
        internal: false,
        arguments: table(vec![("alternate-exchange", long("amq.fanout"))]),
    };
    change.exchange_declare(request).unwrap();
}

fn declare_queue(change: &mut Change<'_>, name: &str, durable: bool, exclusive: bool, shard: u16) {
    let request = QueueDeclare {
        name: short(name),
        passive: false,
        durable,
        exclusive,
        auto_delete: false,
        arguments: table(vec![("x-queue-mode", long("lazy"))]),
        connection: ConnectionId::new(ShardId(0), 1),
        preferred_shard: ShardId(shard),
        server_named: false,
    };
    change.queue_declare(request).unwrap();
}

fn bind(change: &mut Change<'_>, source: &str, destination: DestinationName, key: &str) {
    let arguments = table(vec![(
        "nested",
        FieldValue::Table(table(vec![("a", FieldValue::Bool(true))])),
    )]);
    let request = binding(source, destination, key, arguments);
    change
        .bind(request, ConnectionId::new(ShardId(0), 1))
        .unwrap();
}

/// A vhost with durable and transient objects of every sort, declared through the rules.
fn populated_registry() -> (Registry, u64) {
    let mut registry = Registry::new();
    let mut next_id = Registry::FIRST_DYNAMIC_ID;
    let vhost = registry.vhost_mut(&short(DEFAULT_VHOST)).unwrap();
    let mut change = Change::new(vhost, &mut next_id);
    declare_exchange(&mut change, "durable.direct", "direct", true);
    declare_exchange(&mut change, "durable.headers", "headers", true);
    declare_exchange(&mut change, "transient.fanout", "fanout", false);
    declare_queue(&mut change, "durable", true, false, 1);
    declare_queue(&mut change, "durable-too", true, false, 0);
    declare_queue(&mut change, "transient", false, false, 1);
    declare_queue(&mut change, "exclusive", true, true, 0);
    bind(&mut change, "amq.topic", to_queue("durable"), "a.*");
    bind(&mut change, "amq.topic", to_queue("transient"), "a.*");
    bind(&mut change, "amq.direct", to_queue("exclusive"), "x");
    bind(&mut change, "durable.direct", to_queue("durable"), "d");
    bind(&mut change, "durable.direct", to_queue("durable-too"), "d");
    bind(
        &mut change,
        "durable.direct",
        to_exchange("amq.fanout"),
        "e2e-standard",
    );
    bind(
        &mut change,
        "durable.direct",
        to_exchange("durable.headers"),
        "e2e",
    );
    bind(
        &mut change,
        "durable.direct",
        to_exchange("transient.fanout"),
        "e2e-transient",
    );
    bind(&mut change, "transient.fanout", to_queue("durable"), "");
    bind(&mut change, "durable.headers", to_queue("durable-too"), "");
    (registry, next_id)
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &ShortStr) -> Vec<String> {
    items.iter().map(|item| name(item).to_string()).collect()
}

fn binding_summaries(definitions: &Definitions) -> Vec<String> {
    let mut out: Vec<String> = definitions
        .bindings
        .iter()
        .map(|b| format!("{} -> {:?} [{}]", b.source, b.destination, b.routing_key))
        .collect();
    out.sort();
    out
}

#[test]
fn collect_keeps_only_what_survives_a_restart() {
    let (registry, next_id) = populated_registry();
    let vhost = registry.vhost(&short(DEFAULT_VHOST)).unwrap();
    let definitions = Definitions::collect(vhost, next_id, 2);
    assert_eq!(definitions.next_id, next_id);
    assert_eq!(definitions.shard_count, 2);
    assert_eq!(
        names(&definitions.exchanges, |e| &e.name),
        ["durable.direct", "durable.headers"]
    );
    assert_eq!(
        names(&definitions.queues, |q| &q.name),
        ["durable", "durable-too"]
    );
    assert_eq!(definitions.queues[0].owner_shard, ShardId(1));
    assert_eq!(
        binding_summaries(&definitions),
        [
            "amq.topic -> Queue(\"durable\") [a.*]",
            "durable.direct -> Exchange(\"amq.fanout\") [e2e-standard]",
            "durable.direct -> Exchange(\"durable.headers\") [e2e]",
            "durable.direct -> Queue(\"durable\") [d]",
            "durable.direct -> Queue(\"durable-too\") [d]",
            "durable.headers -> Queue(\"durable-too\") []",
        ]
    );
    let nested = definitions.bindings[0].arguments.get("nested");
    assert!(
        matches!(nested, Some(FieldValue::Table(_))),
        "arguments survive: {nested:?}"
    );
    definitions.check_invariants();
}

#[test]
fn deltas_rebuild_the_durable_metadata_on_a_fresh_registry() {
    let (registry, next_id) = populated_registry();
    let vhost = registry.vhost(&short(DEFAULT_VHOST)).unwrap();
    let stored = Definitions::collect(vhost, next_id, 2);
    let loaded = Definitions::decode(&stored.encode()).unwrap();

    let mut fresh = Registry::new();
    let rebuilt = fresh.vhost_mut(&loaded.vhost).unwrap();
    for delta in loaded.deltas() {
        rebuilt.apply(&delta);
    }
    for original in &stored.exchanges {
        let copy = &rebuilt.exchange(&original.name).unwrap().definition;
        assert_eq!(copy, original);
    }
    for original in &stored.queues {
        assert_eq!(rebuilt.queue(&original.name), Some(original));
        assert_eq!(
            rebuilt.queue_by_id(original.id).map(|q| &q.name),
            Some(&original.name)
        );
    }
    assert!(rebuilt.queue(&short("transient")).is_none());
    assert!(rebuilt.queue(&short("exclusive")).is_none());
    assert!(rebuilt.exchange(&short("transient.fanout")).is_none());
    // Names, ids, arguments and bindings all come back: collecting again gives the same value.
    assert_eq!(Definitions::collect(rebuilt, next_id, 2), stored);
}

/// A fresh directory on the real filesystem under target/ (HARE_TEST_DIR overrides), not tmpfs.
/// CARGO_TARGET_TMPDIR is set only for integration tests and benches, not for unit tests.
fn test_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("HARE_TEST_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/tmp"),
        PathBuf::from,
    );
    let dir = base.join("definitions-tests").join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_written_file_loads_back() {
    let dir = test_dir("round-trip");
    assert!(load(&dir).unwrap().is_none(), "no file yet");
    let first = sample();
    fs::write(dir.join(FILE_NAME), first.encode()).unwrap();
    assert_eq!(load(&dir).unwrap(), Some(first.clone()));
    let second = Definitions {
        next_id: 2000,
        bindings: Vec::new(),
        ..first
    };
    fs::write(dir.join(FILE_NAME), second.encode()).unwrap();
    assert_eq!(load(&dir).unwrap(), Some(second));
}

#[test]
fn load_ignores_a_leftover_temporary_file() {
    let dir = test_dir("leftover-temporary");
    fs::write(dir.join(TEMPORARY_FILE_NAME), b"half a file").unwrap();
    assert!(
        load(&dir).unwrap().is_none(),
        "a temporary file alone is no definitions"
    );
    let definitions = sample();
    fs::write(dir.join(FILE_NAME), definitions.encode()).unwrap();
    fs::write(dir.join(TEMPORARY_FILE_NAME), b"garbage from a crash").unwrap();
    assert_eq!(load(&dir).unwrap(), Some(definitions));
}

#[test]
fn load_reports_a_corrupted_file() {
    let dir = test_dir("corrupted");
    let mut file = sample().encode();
    fs::write(dir.join(FILE_NAME), &file).unwrap();
    let last = file.len() - 1;
    file[last] ^= 0x40;
    fs::write(dir.join(FILE_NAME), &file).unwrap();
    assert!(matches!(load(&dir), Err(DefinitionsError::Checksum { .. })));
    fs::write(dir.join(FILE_NAME), &file[..10]).unwrap();
    assert!(matches!(
        load(&dir),
        Err(DefinitionsError::Truncated { .. })
    ));
}

#[test]
fn load_reports_io_errors_with_the_path() {
    let dir = test_dir("io-error");
    fs::create_dir(dir.join(FILE_NAME)).unwrap();
    match load(&dir) {
        Err(DefinitionsError::Io { path, .. }) => assert_eq!(path, dir.join(FILE_NAME)),
        other => panic!("expected Io, got {other:?}"),
    }
}

/// The metadata log's records: snapshots and changes round trip, and decoding refuses every
/// truncation without panicking.
#[test]
fn metadata_snapshots_and_changes_round_trip() {
    use crate::vhost::metadata_record::{MetadataChange, MetadataSnapshot};
    let definitions = sample();
    let snapshot = MetadataSnapshot {
        shard_count: definitions.shard_count,
        next_id: definitions.next_id,
        vhosts: vec![definitions.clone()],
        access: None,
    };
    let bytes = snapshot.encode();
    assert_eq!(MetadataSnapshot::decode(&bytes).unwrap(), snapshot);
    for len in 0..bytes.len() {
        assert!(
            MetadataSnapshot::decode(&bytes[..len]).is_err(),
            "length {len}"
        );
    }
    // With the access document: a cut exactly before it reads as a snapshot from before
    // users existed (the log's record checksum is what catches a cut), any other cut fails.
    let mut registry = crate::vhost::Registry::new();
    registry.apply_access(&crate::vhost::access_delta::AccessDelta::VHostPut {
        name: "other".into(),
        metadata: Default::default(),
    });
    let with_access = MetadataSnapshot {
        access: MetadataSnapshot::collect(&registry, 1000, 1).access,
        ..snapshot.clone()
    };
    assert!(with_access.access.is_some());
    let full = with_access.encode();
    assert_eq!(MetadataSnapshot::decode(&full).unwrap(), with_access);
    for len in bytes.len() + 1..full.len() {
        assert!(
            MetadataSnapshot::decode(&full[..len]).is_err(),
            "length {len}"
        );
    }
    let change = MetadataChange {
        next_id: definitions.next_id,
        vhost: definitions.vhost.clone(),
        deltas: definitions
            .deltas()
            .into_iter()
            .chain([
                MetaDelta::Unbound(definitions.bindings[0].clone()),
                MetaDelta::QueueDeleted {
                    name: definitions.queues[0].name.clone(),
                },
                MetaDelta::ExchangeDeleted {
                    name: definitions.exchanges[0].name.clone(),
                },
            ])
            .collect(),
    };
    let bytes = change.encode();
    assert_eq!(MetadataChange::decode(&bytes).unwrap(), change);
    for len in 0..bytes.len() {
        assert!(
            MetadataChange::decode(&bytes[..len]).is_err(),
            "length {len}"
        );
    }
}

/// Replay checks each change against the state before it: what `VHost::apply` would assert
/// on is an error instead.
#[test]
fn metadata_replay_refuses_changes_that_do_not_fit() {
    use crate::vhost::metadata_record::{MetadataChange, MetadataSnapshot};
    use crate::vhost::metadata_replay::MetadataReplay;
    let definitions = sample();
    let empty = MetadataSnapshot::empty(definitions.shard_count, definitions.next_id);
    let change = |deltas: Vec<MetaDelta>| MetadataChange {
        next_id: definitions.next_id,
        vhost: definitions.vhost.clone(),
        deltas,
    };
    // Everything in order rebuilds the sample.
    let mut replay = MetadataReplay::new(&empty).unwrap();
    replay.apply(&change(definitions.deltas())).unwrap();
    let mut rebuilt = replay.finish();
    assert_eq!(rebuilt.vhosts.len(), 1);
    let rebuilt = rebuilt.vhosts.remove(0);
    // Collected bindings come in source-exchange order; compare them as a set.
    let sorted = |definitions: &Definitions| {
        let mut bindings: Vec<String> = definitions
            .bindings
            .iter()
            .map(|b| format!("{b:?}"))
            .collect();
        bindings.sort();
        bindings
    };
    assert_eq!(sorted(&rebuilt), sorted(&definitions));
    assert_eq!(
        Definitions {
            bindings: Vec::new(),
            ..rebuilt
        },
        Definitions {
            bindings: Vec::new(),
            ..definitions.clone()
        }
    );

    let refused = |deltas: Vec<MetaDelta>| {
        let mut replay = MetadataReplay::new(&empty).unwrap();
        replay.apply(&change(deltas)).is_err()
    };
    let queue = definitions.queues[0].clone();
    let binding = definitions.bindings[0].clone();
    assert!(refused(vec![MetaDelta::QueueDeleted {
        name: queue.name.clone()
    }]));
    assert!(refused(vec![
        MetaDelta::QueueDeclared(queue.clone()),
        MetaDelta::QueueDeclared(queue.clone()),
    ]));
    assert!(refused(vec![MetaDelta::Bound(binding.clone())]));
    assert!(refused(vec![MetaDelta::ExchangeDeleted {
        name: short("amq.direct")
    }]));
    let mut transient = queue.clone();
    transient.durable = false;
    assert!(refused(vec![MetaDelta::QueueDeclared(transient)]));
    let mut future_id = queue;
    future_id.id = QueueId(definitions.next_id);
    assert!(refused(vec![MetaDelta::QueueDeclared(future_id)]));
    let mut replay = MetadataReplay::new(&empty).unwrap();
    let backwards = MetadataChange {
        next_id: definitions.next_id - 1,
        ..change(Vec::new())
    };
    assert!(replay.apply(&backwards).is_err());
}

#[test]
fn consistent_hash_arguments_and_weights_are_checked_on_load() {
    let both = table(vec![
        ("hash-header", long("h")),
        ("hash-property", long("message_id")),
    ]);
    let mut definitions = sample();
    definitions.exchanges[4].arguments = both;
    assert_eq!(
        invalid_what(&seal(&definitions.encode_body())),
        "exchange arguments refused by the exchange kind"
    );

    let mut definitions = sample();
    definitions.bindings[7].routing_key = short("0");
    assert_eq!(
        invalid_what(&seal(&definitions.encode_body())),
        "binding arguments refused by the exchange kind"
    );
}

/// The keys that `vhost` routes through `exchange` to each queue name.
fn ring_placement(vhost: &VHost, exchange: &str) -> Vec<String> {
    let exchange = vhost.exchange(&short(exchange)).unwrap();
    let mut scratch = crate::vhost::route::RouteScratch::default();
    let mut queues = Vec::new();
    let properties = crate::protocol::BasicProperties::default();
    (0..2000)
        .map(|number| {
            let key = short(&format!("customer-{number}"));
            let message = crate::vhost::route::RoutedMessage::new(&key, &properties);
            vhost.route(exchange, &key, &message, &mut scratch, &mut queues);
            assert_eq!(queues.len(), 1, "one queue per message");
            vhost.queue_by_id(queues[0]).unwrap().name.to_string()
        })
        .collect()
}

#[test]
fn a_consistent_hash_ring_is_rebuilt_the_same_from_stored_bindings() {
    let mut registry = Registry::new();
    let mut next_id = Registry::FIRST_DYNAMIC_ID;
    let vhost = registry.vhost_mut(&short(DEFAULT_VHOST)).unwrap();
    let mut change = Change::new(vhost, &mut next_id);
    declare_exchange(&mut change, "ring", "x-consistent-hash", true);
    for name in ["q0", "q1", "q2", "q3"] {
        declare_queue(&mut change, name, true, false, 0);
    }
    // Bound out of id order, and one range removed from the middle.
    for (queue, weight) in [("q2", "3"), ("q0", "1"), ("q3", "2"), ("q1", "1")] {
        bind(&mut change, "ring", to_queue(queue), weight);
    }
    let middle = binding("ring", to_queue("q0"), "1", no_args());
    let nested = table(vec![(
        "nested",
        FieldValue::Table(table(vec![("a", FieldValue::Bool(true))])),
    )]);
    let middle = BindingDefinition {
        arguments: nested,
        ..middle
    };
    change
        .unbind(middle, ConnectionId::new(ShardId(0), 1))
        .unwrap();

    let vhost = registry.vhost(&short(DEFAULT_VHOST)).unwrap();
    let stored = Definitions::collect(vhost, next_id, 2);
    let order: Vec<String> = stored
        .bindings
        .iter()
        .filter(|b| b.source.as_bytes() == b"ring")
        .map(|b| format!("{:?} {}", b.destination, b.routing_key))
        .collect();
    assert_eq!(
        order,
        ["Queue(\"q2\") 3", "Queue(\"q3\") 2", "Queue(\"q1\") 1"],
        "bindings are stored in bind order"
    );

    let loaded = Definitions::decode(&stored.encode()).unwrap();
    let rebuilt = loaded.build_vhost().unwrap();
    let before = ring_placement(vhost, "ring");
    assert_eq!(ring_placement(&rebuilt, "ring"), before);
    for name in ["q1", "q2", "q3"] {
        assert!(before.iter().any(|queue| queue == name), "{name} gets keys");
    }
    assert!(!before.iter().any(|queue| queue == "q0"));
}

/// Access changes (vhosts, users, permissions) replay from the log like the others, survive a
/// snapshot, and a change that does not fit (a permission for a missing user, deleting a vhost
/// that still holds queues) is an error, not a panic.
#[test]
fn metadata_replay_rebuilds_access_changes() {
    use crate::vhost::access::{Permission, User, VHostMetadata};
    use crate::vhost::access_delta::AccessDelta;
    use crate::vhost::metadata_record::{MetadataChange, MetadataSnapshot};
    use crate::vhost::metadata_replay::MetadataReplay;
    use crate::vhost::password::{hash_password, HashingAlgorithm};
    let access = |deltas: Vec<AccessDelta>| MetadataChange {
        next_id: 1000,
        vhost: short(DEFAULT_VHOST),
        deltas: deltas.into_iter().map(MetaDelta::Access).collect(),
    };
    let vhost_put = |name: &str| AccessDelta::VHostPut {
        name: name.into(),
        metadata: VHostMetadata::default(),
    };
    let permission = Permission {
        user: "u".into(),
        vhost: "v".into(),
        configure: "^x".into(),
        write: ".*".into(),
        read: "".into(),
    };
    let user = User {
        name: "u".into(),
        password_hash: hash_password(HashingAlgorithm::Sha256, b"pw"),
        hashing_algorithm: HashingAlgorithm::Sha256,
        tags: vec!["monitoring".into()],
    };
    let setup = access(vec![
        vhost_put("v"),
        AccessDelta::UserPut(user.clone()),
        AccessDelta::PermissionSet(permission.clone()),
    ]);
    let bytes = setup.encode();
    assert_eq!(MetadataChange::decode(&bytes).unwrap(), setup);

    let empty = MetadataSnapshot::empty(1, 1000);
    let mut replay = MetadataReplay::new(&empty).unwrap();
    replay.apply(&setup).unwrap();
    // A queue in "v", then deleting "v" without deleting the queue first does not fit.
    let mut queue_in_v = queue(1000, "q", 0);
    queue_in_v.durable = true;
    replay
        .apply(&MetadataChange {
            next_id: 1001,
            vhost: short("v"),
            deltas: vec![MetaDelta::QueueDeclared(queue_in_v)],
        })
        .unwrap();
    let mut doomed = MetadataReplay::new(&empty).unwrap();
    doomed.apply(&setup).unwrap();
    assert!(doomed
        .apply(&access(vec![AccessDelta::PermissionSet(Permission {
            user: "missing".into(),
            ..permission.clone()
        })]))
        .is_err());
    let snapshot = replay.finish();
    let document = snapshot.access.clone().expect("access replayed");
    assert_eq!(document.users, vec![user]);
    assert_eq!(document.permissions, vec![permission]);
    assert_eq!(document.vhosts.len(), 2);
    // The snapshot restarts the replay with the same state.
    let decoded = MetadataSnapshot::decode(&snapshot.encode()).unwrap();
    let mut again = MetadataReplay::new(&decoded).unwrap();
    assert!(again
        .apply(&access(vec![AccessDelta::VHostDeleted {
            name: "v".into()
        }]))
        .is_err());
    assert_eq!(again.finish().access, Some(document));
}
