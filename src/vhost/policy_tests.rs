use serde_json::json;

use super::*;
use crate::vhost::access::{AccessRefusal, VHostMetadata};
use crate::vhost::access_delta::AccessDelta;

fn definition(value: Value) -> Definition {
    match value {
        Value::Object(map) => map,
        _ => panic!("an object"),
    }
}

fn policy(
    kind: PolicyKind,
    name: &str,
    pattern: &str,
    apply_to: &str,
    priority: i64,
    value: Value,
) -> Policy {
    Policy {
        kind,
        vhost: "/".into(),
        name: name.into(),
        pattern: pattern.into(),
        apply_to: apply_to.into(),
        definition: definition(value),
        priority,
    }
}

fn state(policies: &[Policy]) -> AccessState {
    let mut state = AccessState::default();
    let vhost = AccessDelta::VHostPut {
        name: "/".into(),
        metadata: VHostMetadata::default(),
    };
    state.apply(&vhost);
    for policy in policies {
        let delta = AccessDelta::PolicySet(policy.clone());
        state.check_delta(&delta).expect("valid policy");
        state.apply(&delta);
    }
    state
}

const CLASSIC: PolicyTarget = PolicyTarget::Queue(QueueType::Classic);
const QUORUM: PolicyTarget = PolicyTarget::Queue(QueueType::Quorum);

#[test]
fn the_highest_priority_matching_policy_applies_and_ties_go_to_the_first_name() {
    let access = state(&[
        policy(
            PolicyKind::Policy,
            "b-low",
            "^q",
            "queues",
            1,
            json!({"max-length": 1}),
        ),
        policy(
            PolicyKind::Policy,
            "c-high",
            "q",
            "all",
            5,
            json!({"max-length": 5}),
        ),
        policy(
            PolicyKind::Policy,
            "a-high",
            "q",
            "queues",
            5,
            json!({"max-length": 6}),
        ),
        policy(
            PolicyKind::Policy,
            "x",
            "^x$",
            "exchanges",
            9,
            json!({"alternate-exchange": "ae"}),
        ),
    ]);
    let found = effective_policy(&access, "/", b"a.q", CLASSIC);
    assert_eq!(found.policy.as_deref(), Some("a-high"));
    assert_eq!(found.definition, definition(json!({"max-length": 6})));
    assert_eq!(found.operator_policy, None);
    // The pattern is unanchored; "x" is for exchanges only.
    assert_eq!(effective_policy(&access, "/", b"x", CLASSIC).policy, None);
    assert_eq!(
        effective_policy(&access, "/", b"x", PolicyTarget::Exchange)
            .policy
            .as_deref(),
        Some("x")
    );
    assert_eq!(
        effective_policy(&access, "/", b"q", PolicyTarget::Exchange)
            .policy
            .as_deref(),
        Some("c-high")
    );
    assert_eq!(
        effective_policy(&access, "other", b"q", CLASSIC),
        EffectivePolicy::default()
    );
}

#[test]
fn apply_to_and_queue_type_capabilities_filter_policies() {
    let access = state(&[
        // delivery-limit is a quorum key: the whole policy skips classic queues.
        policy(
            PolicyKind::Policy,
            "dl",
            ".*",
            "queues",
            9,
            json!({"delivery-limit": 3, "max-length": 2}),
        ),
        policy(
            PolicyKind::Policy,
            "classic",
            ".*",
            "classic_queues",
            1,
            json!({"max-length": 7}),
        ),
        policy(
            PolicyKind::Policy,
            "empty-pattern",
            "",
            "quorum_queues",
            0,
            json!({"expires": 7}),
        ),
    ]);
    assert_eq!(
        effective_policy(&access, "/", b"q", CLASSIC)
            .policy
            .as_deref(),
        Some("classic")
    );
    assert_eq!(
        effective_policy(&access, "/", b"q", QUORUM)
            .policy
            .as_deref(),
        Some("dl")
    );
    let access = state(&[policy(
        PolicyKind::Policy,
        "e",
        "",
        "quorum_queues",
        0,
        json!({"expires": 7}),
    )]);
    assert_eq!(
        effective_policy(&access, "/", b"any", QUORUM)
            .policy
            .as_deref(),
        Some("e")
    );
}

#[test]
fn the_operator_policy_wins_with_the_stricter_limit() {
    let access = state(&[
        policy(
            PolicyKind::Policy,
            "p",
            ".*",
            "all",
            0,
            json!({"max-length": 100, "message-ttl": 1000, "overflow": "drop-head", "dead-letter-exchange": "dlx"}),
        ),
        policy(
            PolicyKind::Operator,
            "op",
            ".*",
            "queues",
            0,
            json!({"max-length": 10, "message-ttl": 5000, "overflow": "reject-publish", "expires": 60000}),
        ),
    ]);
    let found = effective_policy(&access, "/", b"q", CLASSIC);
    assert_eq!(found.policy.as_deref(), Some("p"));
    assert_eq!(found.operator_policy.as_deref(), Some("op"));
    assert_eq!(
        found.definition,
        definition(json!({
            "max-length": 10,
            "message-ttl": 1000,
            "overflow": "reject-publish",
            "dead-letter-exchange": "dlx",
            "expires": 60000
        }))
    );
    assert_eq!(merge_operator_definitions(None, None), Definition::new());
}

fn refusal(kind: PolicyKind, value: Value) -> String {
    validate_definition(kind, &definition(value)).expect_err("refused")
}

#[test]
fn definitions_are_validated_with_rabbitmq_texts() {
    let cases = [
        (json!({"message-ttl": -1}), "-1 is not a valid message TTL"),
        (json!({"message-ttl": "10"}), "<<\"10\">> is not a valid message TTL"),
        (json!({"expires": 0}), "0 is not a valid queue expiry"),
        (json!({"max-length": 1.5}), "1.5 is not a valid maximum length"),
        (json!({"max-length-bytes": true}), "true is not a valid maximum length in bytes"),
        (json!({"overflow": "drop-tail"}), "<<\"drop-tail\">> is not a valid overflow value"),
        (json!({"dead-letter-exchange": 1}), "1 is not a valid dead letter exchange name"),
        (json!({"dead-letter-routing-key": null}), "null is not a valid dead letter routing key"),
        (json!({"delivery-limit": -2}), "-2 is not a valid delivery limit"),
        (json!({"queue-mode": "fast"}), "<<\"fast\">> is not a valid queue-mode value"),
        (json!({"alternate-exchange": ["a"]}), "[<<\"a\">>] is not a valid alternate exchange name"),
        (json!({"consumer-timeout": -1}), "-1 is not a valid consumer timeout"),
        (json!({"max-age": "1x"}), "<<\"1x\">> is not a valid max age"),
        (json!({"max-priority": 5}), "[{<<\"max-priority\">>,5}] are not recognised policy settings"),
        (
            json!({"single-active-consumer": true, "zz": {"a": 1}}),
            "[{<<\"single-active-consumer\">>,true},{<<\"zz\">>,#{<<\"a\">> => 1}}] are not recognised policy settings",
        ),
        (json!({}), "no policy provided"),
        (json!({"ha-params": 2}), "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"),
        (json!({"ha-mode": "exactly", "ha-params": 0}), "ha-mode=\"exactly\" takes an integer, 0 given"),
    ];
    for (value, text) in cases {
        assert_eq!(refusal(PolicyKind::Policy, value), text);
    }
    let accepted = json!({
        "message-ttl": 0, "expires": 1, "max-length": 0, "max-length-bytes": 10,
        "overflow": "reject-publish-dlx", "dead-letter-exchange": "", "dead-letter-routing-key": "k",
        "delivery-limit": 0, "queue-mode": "lazy", "alternate-exchange": "ae",
        "consumer-timeout": 0, "max-age": "7D", "queue-version": 2, "ha-mode": "all",
        "ha-sync-mode": "automatic"
    });
    assert_eq!(
        validate_definition(PolicyKind::Policy, &definition(accepted)),
        Ok(())
    );
}

#[test]
fn operator_policies_take_fewer_keys() {
    assert_eq!(
        validate_definition(
            PolicyKind::Operator,
            &definition(
                json!({"max-length": 1, "message-ttl": 1, "expires": 1, "max-length-bytes": 1,
                "delivery-limit": 1, "overflow": "reject-publish"})
            )
        ),
        Ok(())
    );
    assert_eq!(
        refusal(PolicyKind::Operator, json!({"dead-letter-exchange": "dlx"})),
        "[{<<\"dead-letter-exchange\">>,<<\"dlx\">>}] are not recognised policy settings"
    );
}

#[test]
fn a_refused_policy_change_says_validation_failed() {
    let access = state(&[]);
    let bad = policy(
        PolicyKind::Policy,
        "p",
        ".*",
        "all",
        0,
        json!({"max-length": -1}),
    );
    assert_eq!(
        access.check_delta(&AccessDelta::PolicySet(bad)),
        Err(AccessRefusal::BadRequest(
            "Validation failed\n\n-1 is not a valid maximum length\n".into()
        ))
    );
    let bad_apply_to = policy(
        PolicyKind::Policy,
        "p",
        ".*",
        "nothing",
        0,
        json!({"max-length": 1}),
    );
    assert!(matches!(
        access.check_delta(&AccessDelta::PolicySet(bad_apply_to)),
        Err(AccessRefusal::BadRequest(text)) if text.contains("apply-to 'nothing' unrecognised")
    ));
}

#[test]
fn a_policy_gives_exchanges_an_alternate_exchange_unless_they_have_the_argument() {
    use crate::ids::ExchangeId;
    use crate::protocol::{FieldTable, FieldValue};
    use crate::routing::ExchangeKind;
    use crate::vhost::delta::MetaDelta;
    use crate::vhost::exchange::ExchangeDefinition;
    use crate::vhost::Registry;

    let vhost = ShortStr::from_static("/");
    let declare =
        |registry: &mut Registry, id: u64, name: &'static str, ae: Option<&'static str>| {
            let mut arguments = FieldTable::new();
            if let Some(ae) = ae {
                arguments.insert(
                    ShortStr::from_static("alternate-exchange"),
                    FieldValue::LongStr(bytes::Bytes::from_static(ae.as_bytes())),
                );
            }
            let definition = ExchangeDefinition {
                id: ExchangeId(id),
                name: ShortStr::from_static(name),
                kind: ExchangeKind::Direct,
                durable: true,
                auto_delete: false,
                internal: false,
                delayed: false,
                arguments,
            };
            registry.apply_delta(&vhost, &MetaDelta::ExchangeDeclared(definition));
        };
    let alternate = |registry: &Registry, name: &'static str| {
        registry
            .vhost(&vhost)
            .and_then(|v| v.exchange(&ShortStr::from_static(name)))
            .and_then(|x| x.alternate_exchange.clone())
            .map(|ae| ae.to_string_lossy())
    };
    let mut registry = Registry::new();
    declare(&mut registry, 1000, "orders", None);
    declare(&mut registry, 1001, "own", Some("mine"));
    let set = AccessDelta::PolicySet(policy(
        PolicyKind::Policy,
        "ae",
        ".*",
        "exchanges",
        0,
        json!({"alternate-exchange": "lost"}),
    ));
    registry.apply_access(&set);
    declare(&mut registry, 1002, "later", None);
    assert_eq!(alternate(&registry, "orders").as_deref(), Some("lost"));
    assert_eq!(alternate(&registry, "later").as_deref(), Some("lost"));
    assert_eq!(
        alternate(&registry, "own").as_deref(),
        Some("mine"),
        "the argument wins"
    );
    assert_eq!(
        alternate(&registry, "").as_deref(),
        None,
        "not the default exchange"
    );
    registry.apply_access(&AccessDelta::PolicyCleared {
        kind: PolicyKind::Policy,
        vhost: "/".into(),
        name: "ae".into(),
    });
    assert_eq!(alternate(&registry, "orders"), None);
    assert_eq!(alternate(&registry, "own").as_deref(), Some("mine"));
}
