use super::*;
use crate::routing::test_support::{s, table, Rng, TestValue};
use crate::routing::{BindingTable, ExchangeKind};

type Table = BindingTable<u32, TestValue>;
type Headers = Vec<(Vec<u8>, TestValue)>;

const KEYS: usize = 100_000;

fn keys(seed: u64, count: usize) -> Vec<String> {
    let mut rng = Rng(seed);
    (0..count).map(|_| format!("key-{}", rng.next())).collect()
}

fn bind(t: &mut Table, weight: &str, destination: u32) {
    let added = t
        .bind(weight.as_bytes(), Vec::new(), destination)
        .expect("a valid weight");
    assert!(added);
    t.check_invariants();
}

fn unbind(t: &mut Table, weight: &str, destination: u32) {
    assert!(t.unbind(weight.as_bytes(), &[], destination));
    t.check_invariants();
}

fn route_with(t: &Table, headers: Option<&Headers>, hashed: &HashInputs<'_>) -> Vec<u32> {
    let mut out = Vec::new();
    t.route(
        hashed.routing_key,
        headers.map(Vec::as_slice),
        hashed,
        &mut out,
    );
    out
}

/// The one destination `key` goes to.
fn route(t: &Table, key: &str) -> u32 {
    let hashed = HashInputs {
        routing_key: key.as_bytes(),
        ..HashInputs::default()
    };
    let out = route_with(t, None, &hashed);
    assert_eq!(out.len(), 1, "exactly one destination per message");
    out[0]
}

/// The share of `keys` each of the destinations `0..count` gets.
fn shares(t: &Table, keys: &[String], count: usize) -> Vec<f64> {
    let mut hits = vec![0usize; count];
    for key in keys {
        hits[route(t, key) as usize] += 1;
    }
    hits.into_iter()
        .map(|hit| hit as f64 / keys.len() as f64)
        .collect()
}

fn assert_near(actual: f64, expected: f64, tolerance: f64, what: &str) {
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual:.4} is not within {tolerance} of {expected}"
    );
}

#[test]
fn weights_parse_as_the_plugin_reads_them() {
    assert_eq!(parse_weight(b"1"), Ok(1));
    assert_eq!(parse_weight(b"+3"), Ok(3));
    assert_eq!(parse_weight(b"007"), Ok(7));
    assert_eq!(parse_weight(b"10000"), Ok(WEIGHT_MAX));
    let too_large = Err(BindError::WeightTooLarge { max: WEIGHT_MAX });
    assert_eq!(parse_weight(b"10001"), too_large);
    assert_eq!(parse_weight(b"99999999999999999999999"), too_large);
    for key in ["0", "-1", "-0", "+0", "-99999999999999999999"] {
        assert_eq!(
            parse_weight(key.as_bytes()),
            Err(BindError::WeightNotPositive),
            "{key}"
        );
    }
    for (key, shown) in [
        ("", "<<\"\">>"),
        ("abc", "<<\"abc\">>"),
        ("1.5", "<<\"1.5\">>"),
        (" 1", "<<\" 1\">>"),
        ("1 ", "<<\"1 \">>"),
        ("-", "<<\"-\">>"),
        ("a\"b", "<<\"a\\\"b\">>"),
        ("é", "<<195,169>>"),
    ] {
        let error = parse_weight(key.as_bytes()).expect_err(key);
        assert_eq!(
            error.to_string(),
            format!("The binding key must be an integer: {shown}")
        );
    }
    assert_eq!(
        BindError::WeightNotPositive.to_string(),
        "The binding key must be greater than 0"
    );
    assert_eq!(
        BindError::WeightTooLarge { max: WEIGHT_MAX }.to_string(),
        "The binding key must not exceed 10000"
    );
}

#[test]
fn invalid_weights_change_nothing() {
    let mut t = Table::new(ExchangeKind::ConsistentHash);
    for key in ["0", "x", "", "-2", "10001"] {
        assert!(t.bind(key.as_bytes(), Vec::new(), 1).is_err(), "{key}");
    }
    t.check_invariants();
    assert!(t.is_empty());
    assert_eq!(
        route_with(&t, None, &HashInputs::default()),
        Vec::<u32>::new(),
        "an empty ring routes nowhere"
    );
}

#[test]
fn the_same_key_always_reaches_the_same_destination() {
    let build = || {
        let mut t = Table::new(ExchangeKind::ConsistentHash);
        bind(&mut t, "2", 0);
        bind(&mut t, "1", 1);
        bind(&mut t, "3", 2);
        t
    };
    let (first, second) = (build(), build());
    let mut seen = [false; 3];
    for key in keys(1, 1000) {
        let destination = route(&first, &key);
        assert_eq!(route(&first, &key), destination, "{key}");
        assert_eq!(
            route(&second, &key),
            destination,
            "another copy built the same way agrees"
        );
        seen[destination as usize] = true;
    }
    assert_eq!(seen, [true; 3]);
}

/// The hash is part of the stored state's meaning: a change would move every key after an
/// upgrade. These values pin it.
#[test]
fn the_hash_and_the_jump_are_pinned() {
    let hash = |bytes: &[u8]| {
        let mut hasher = StableHasher::default();
        hasher.write_tagged(tag::STRING, bytes);
        hasher.finish()
    };
    assert_eq!(hash(b""), 0xcc38_350d_bfbd_2cea);
    assert_eq!(hash(b"order-42"), 0x012a_b244_c3e6_1278);
    assert_eq!(jump_consistent_hash(hash(b""), 1000), 283);
    assert_eq!(jump_consistent_hash(hash(b"order-42"), 1), 0);
    assert_eq!(jump_consistent_hash(hash(b"order-42"), 10), 6);
    assert_eq!(jump_consistent_hash(hash(b"order-42"), 1000), 906);
}

#[test]
fn jump_hash_moves_keys_only_into_the_new_bucket() {
    let mut rng = Rng(7);
    for _ in 0..10_000 {
        let key = rng.next();
        let mut previous = jump_consistent_hash(key, 1);
        assert_eq!(previous, 0);
        for buckets in 2..40 {
            let bucket = jump_consistent_hash(key, buckets);
            assert!(bucket < buckets);
            assert!(bucket == previous || bucket == buckets - 1);
            previous = bucket;
        }
    }
}

#[test]
fn distribution_follows_the_weights() {
    let mut t = Table::new(ExchangeKind::ConsistentHash);
    bind(&mut t, "1", 0);
    bind(&mut t, "3", 1);
    let shares = shares(&t, &keys(2, KEYS), 2);
    assert_near(shares[0], 0.25, 0.01, "weight 1 of 4");
    assert_near(shares[1], 0.75, 0.01, "weight 3 of 4");

    let mut uneven = Table::new(ExchangeKind::ConsistentHash);
    for (destination, weight) in ["5", "1", "10", "4"].iter().enumerate() {
        bind(&mut uneven, weight, destination as u32);
    }
    let shares = shares_of(&uneven, 4);
    for (share, weight) in shares.iter().zip([5.0, 1.0, 10.0, 4.0]) {
        assert_near(*share, weight / 20.0, 0.01, "weight of 20");
    }
}

fn shares_of(t: &Table, count: usize) -> Vec<f64> {
    shares(t, &keys(3, KEYS), count)
}

#[test]
fn adding_a_third_equal_binding_moves_about_a_third_of_the_keys() {
    let mut t = Table::new(ExchangeKind::ConsistentHash);
    bind(&mut t, "10", 0);
    bind(&mut t, "10", 1);
    let keys = keys(4, KEYS);
    let before: Vec<u32> = keys.iter().map(|key| route(&t, key)).collect();
    bind(&mut t, "10", 2);
    let mut moved = 0;
    for (key, &old) in keys.iter().zip(&before) {
        let new = route(&t, key);
        if new != old {
            assert_eq!(new, 2, "a moved key moves to the new binding only");
            moved += 1;
        }
    }
    assert_near(moved as f64 / KEYS as f64, 1.0 / 3.0, 0.01, "moved keys");
}

#[test]
fn unbinding_removes_the_bindings_buckets() {
    let mut t = Table::new(ExchangeKind::ConsistentHash);
    bind(&mut t, "1", 0);
    bind(&mut t, "2", 1);
    bind(&mut t, "1", 2);
    let keys = keys(5, KEYS);
    let before: Vec<u32> = keys.iter().map(|key| route(&t, key)).collect();

    // The last range goes: only its keys move, spread by weight over the others.
    unbind(&mut t, "1", 2);
    let shares = shares(&t, &keys, 3);
    assert_eq!(shares[2], 0.0, "an unbound destination gets nothing");
    assert_near(shares[0], 1.0 / 3.0, 0.01, "weight 1 of 3");
    for (key, &old) in keys.iter().zip(&before) {
        if old != 2 {
            assert_eq!(route(&t, key), old, "keys of the remaining bindings stay");
        }
    }

    // A middle range goes: later ranges move down, as in the plugin.
    unbind(&mut t, "1", 0);
    assert!(keys.iter().all(|key| route(&t, key) == 1));
    unbind(&mut t, "2", 1);
    assert!(route_with(&t, None, &HashInputs::default()).is_empty());
}

#[test]
fn each_binding_of_a_destination_adds_its_weight() {
    let mut t = Table::new(ExchangeKind::ConsistentHash);
    bind(&mut t, "1", 0);
    bind(&mut t, "1", 1);
    bind(&mut t, "2", 1);
    let shares = shares_of(&t, 2);
    assert_near(shares[1], 0.75, 0.01, "weights 1 and 2 to one queue");
    assert_eq!(t.remove_destination(1), 2);
    t.check_invariants();
    assert_eq!(shares_of(&t, 2), vec![1.0, 0.0]);
}

#[test]
fn a_hash_header_is_hashed_by_value_and_a_missing_one_as_absent() {
    let mut t = Table::consistent_hash(HashSource::Header(b"shard-key".as_slice().into()));
    for destination in 0..8 {
        bind(&mut t, "1", destination);
    }
    let routed = |value: Option<TestValue>, routing_key: &str| {
        let headers = match value {
            Some(value) => table(&[("other", s("x")), ("shard-key", value)]),
            None => table(&[("other", s("x"))]),
        };
        let hashed = HashInputs {
            routing_key: routing_key.as_bytes(),
            ..HashInputs::default()
        };
        let out = route_with(&t, Some(&headers), &hashed);
        assert_eq!(out.len(), 1);
        out[0]
    };
    let mut seen = std::collections::BTreeSet::new();
    for key in keys(6, 200) {
        let destination = routed(Some(s(&key)), "a");
        assert_eq!(
            routed(Some(s(&key)), "b"),
            destination,
            "the key is ignored"
        );
        seen.insert(destination);
    }
    assert_eq!(seen.len(), 8, "header values spread over every binding");
    for number in 0..50 {
        assert_eq!(
            routed(Some(TestValue::Int(number)), ""),
            routed(Some(TestValue::Short(number as i16)), ""),
            "integers of any width hash alike"
        );
    }
    let absent = routed(None, "a");
    assert_eq!(routed(None, "b"), absent);
    assert_eq!(routed(Some(TestValue::Void), "c"), absent, "void is absent");
    let without_table = route_with(&t, None, &HashInputs::default());
    assert_eq!(
        without_table,
        vec![absent],
        "no headers at all is absent too"
    );
}

#[test]
fn a_hash_property_is_hashed_and_a_missing_one_as_absent() {
    let properties = [
        HashProperty::MessageId,
        HashProperty::CorrelationId,
        HashProperty::Timestamp,
    ];
    for property in properties {
        let mut t = Table::consistent_hash(HashSource::Property(property));
        for destination in 0..8 {
            bind(&mut t, "1", destination);
        }
        let mut seen = std::collections::BTreeSet::new();
        for (number, key) in keys(7, 200).iter().enumerate() {
            let hashed = HashInputs {
                routing_key: b"ignored",
                message_id: Some(key.as_bytes()),
                correlation_id: Some(key.as_bytes()),
                timestamp: Some(1_700_000_000 + number as u64),
            };
            let destination = route_with(&t, None, &hashed);
            let other_key = HashInputs {
                routing_key: b"other",
                ..hashed
            };
            assert_eq!(route_with(&t, None, &other_key), destination);
            seen.extend(destination);
        }
        assert_eq!(seen.len(), 8, "{property:?} values spread");
        let absent = route_with(&t, None, &HashInputs::default());
        assert_eq!(absent.len(), 1, "a missing property still routes");
    }
    assert_eq!(
        HashProperty::parse(b"timestamp"),
        Some(HashProperty::Timestamp)
    );
    assert_eq!(HashProperty::parse(b"app_id"), None);
    assert_eq!(HashProperty::parse(b"message-id"), None);
}

#[test]
fn snapshots_list_bindings_in_bind_order() {
    let mut t = Table::new(ExchangeKind::ConsistentHash);
    bind(&mut t, "3", 9);
    bind(&mut t, "1", 2);
    bind(&mut t, "2", 9);
    let listed: Vec<(Vec<u8>, u32)> = t
        .iter_in_bind_order()
        .map(|(key, _, destination)| (key.to_vec(), destination))
        .collect();
    assert_eq!(
        listed,
        vec![(b"3".to_vec(), 9), (b"1".to_vec(), 2), (b"2".to_vec(), 9)]
    );

    let mut replayed = Table::new(ExchangeKind::ConsistentHash);
    for (key, arguments, destination) in t.iter_in_bind_order() {
        assert!(replayed
            .bind(key, arguments.to_vec(), destination)
            .expect("valid"));
    }
    for key in keys(8, 1000) {
        assert_eq!(route(&replayed, &key), route(&t, &key));
    }
}
