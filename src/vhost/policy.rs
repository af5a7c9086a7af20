//! Which policy and operator policy apply to a queue or exchange, what their definitions merge
//! to, and which definitions are valid: RabbitMQ 3.13's `rabbit_policy` and `rabbit_policies`
//! (docs/rabbitmq-compatibility.md §16, docs/ARCHITECTURE.md "Policies").
//!
//! - An object gets at most one policy and one operator policy of its vhost: of those whose
//!   pattern matches anywhere in its name, whose `apply-to` covers it and whose keys its queue
//!   type supports, the one with the highest priority. RabbitMQ leaves equal priorities to its
//!   table's order; here the name that sorts first wins.
//! - The two definitions merge key by key: a key in one only is taken as is; a key in both
//!   takes the smaller number for the limits (`message-ttl`, `expires`, `max-length`,
//!   `max-length-bytes`, `delivery-limit`, ...) and the operator policy's value otherwise.
//!
//! How a merged definition meets a queue's own `x-` arguments is `queue::policy_settings`.

use serde_json::{Map, Value};

use crate::protocol::ShortStr;
use crate::queue::settings::QueueType;
use crate::vhost::access::{AccessState, Pattern, Policy, PolicyKind};

/// A policy definition, as RabbitMQ keeps it.
pub type Definition = Map<String, Value>;

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyTarget {
    Exchange,
    Queue(QueueType),
}

/// The policies that apply to one object, and their merged definition (what the management
/// API lists as `policy`, `operator_policy` and `effective_policy_definition`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EffectivePolicy {
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
    pub definition: Definition,
}

/// The policy and operator policy of `name` in `vhost`, and their merged definition.
pub fn effective_policy(
    access: &AccessState,
    vhost: &str,
    name: &[u8],
    target: PolicyTarget,
) -> EffectivePolicy {
    VHostPolicies::of(access, vhost).effective(name, target)
}

/// A policy with its pattern compiled.
#[derive(Debug)]
struct Compiled<'a> {
    policy: &'a Policy,
    pattern: Pattern,
}

/// One vhost's policies, compiled once and sorted best first, to match many objects with.
#[derive(Debug, Default)]
pub struct VHostPolicies<'a> {
    policies: Vec<Compiled<'a>>,
    operator: Vec<Compiled<'a>>,
}

impl<'a> VHostPolicies<'a> {
    pub fn of(access: &'a AccessState, vhost: &str) -> VHostPolicies<'a> {
        let mut found = VHostPolicies::default();
        // The map is ordered by (kind, vhost, name): a stable sort by priority keeps the
        // first name first among equal priorities.
        for ((kind, policy_vhost, _), policy) in &access.policies {
            if policy_vhost != vhost {
                continue;
            }
            let Ok(pattern) = compile_pattern(&policy.pattern) else {
                continue;
            };
            let compiled = Compiled { policy, pattern };
            match kind {
                PolicyKind::Policy => found.policies.push(compiled),
                PolicyKind::Operator => found.operator.push(compiled),
            }
        }
        for list in [&mut found.policies, &mut found.operator] {
            list.sort_by_key(|compiled| std::cmp::Reverse(compiled.policy.priority));
        }
        found
    }

    /// True if the vhost has no policy of either kind.
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.operator.is_empty()
    }

    /// The policy of `kind` that applies to `name`, if any.
    pub fn select(
        &self,
        kind: PolicyKind,
        name: &[u8],
        target: PolicyTarget,
    ) -> Option<&'a Policy> {
        let list = match kind {
            PolicyKind::Policy => &self.policies,
            PolicyKind::Operator => &self.operator,
        };
        list.iter()
            .find(|compiled| {
                applies_to(&compiled.policy.apply_to, target)
                    && is_applicable(&compiled.policy.definition, target)
                    && compiled.pattern.matches(name)
            })
            .map(|compiled| compiled.policy)
    }

    pub fn effective(&self, name: &[u8], target: PolicyTarget) -> EffectivePolicy {
        let policy = self.select(PolicyKind::Policy, name, target);
        let operator = self.select(PolicyKind::Operator, name, target);
        EffectivePolicy {
            policy: policy.map(|p| p.name.clone()),
            operator_policy: operator.map(|p| p.name.clone()),
            definition: merge_operator_definitions(
                policy.map(|p| &p.definition),
                operator.map(|p| &p.definition),
            ),
        }
    }
}

/// A policy that applies to exchanges, with the `alternate-exchange` it sets (if any).
#[derive(Debug, Clone)]
pub struct ExchangeAlternate {
    pattern: Pattern,
    alternate: Option<ShortStr>,
}

/// The vhost's policies (not operator policies, which cannot set it) that apply to
/// exchanges, best first.
pub fn exchange_alternates(access: &AccessState, vhost: &str) -> Vec<ExchangeAlternate> {
    VHostPolicies::of(access, vhost)
        .policies
        .into_iter()
        .filter(|compiled| applies_to(&compiled.policy.apply_to, PolicyTarget::Exchange))
        .map(|compiled| ExchangeAlternate {
            alternate: compiled
                .policy
                .definition
                .get("alternate-exchange")
                .and_then(Value::as_str)
                .and_then(ShortStr::copy_from_str),
            pattern: compiled.pattern,
        })
        .collect()
}

/// The alternate exchange the best policy matching `name` sets.
pub fn alternate_for(alternates: &[ExchangeAlternate], name: &ShortStr) -> Option<ShortStr> {
    alternates
        .iter()
        .find(|policy| policy.pattern.matches(name.as_bytes()))
        .and_then(|policy| policy.alternate.clone())
}

/// A policy pattern: a regex matched anywhere in the name, where (unlike a permission) `""`
/// matches every name, as `re:run(Name, <<>>)` does.
pub fn compile_pattern(pattern: &str) -> Result<Pattern, String> {
    if pattern.is_empty() {
        Ok(Pattern::Everything)
    } else {
        Pattern::compile(pattern)
    }
}

/// `rabbit_policy:matches_type` and `matches_queue_type` (a Hare queue is classic or quorum).
pub fn applies_to(apply_to: &str, target: PolicyTarget) -> bool {
    matches!(
        (apply_to, target),
        ("all", _)
            | ("exchanges", PolicyTarget::Exchange)
            | ("queues", PolicyTarget::Queue(_))
            | ("classic_queues", PolicyTarget::Queue(QueueType::Classic))
            | ("quorum_queues", PolicyTarget::Queue(QueueType::Quorum))
    )
}

/// Keys a classic queue does not support (`rabbit_classic_queue:capabilities/0`).
const CLASSIC_UNSUPPORTED: [&str; 9] = [
    "max-age",
    "stream-max-segment-size-bytes",
    "queue-leader-locator",
    "initial-cluster-size",
    "delivery-limit",
    "dead-letter-strategy",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "target-group-size",
];

/// Keys a quorum queue does not support (`rabbit_quorum_queue:capabilities/0`).
const QUORUM_UNSUPPORTED: [&str; 12] = [
    "max-priority",
    "queue-mode",
    "single-active-consumer",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-master-locator",
    "max-age",
    "stream-max-segment-size-bytes",
    "initial-cluster-size",
];

/// `rabbit_queue_type:is_policy_applicable/2`: a policy with any key the queue type does not
/// support does not apply to that queue at all (the next matching policy may).
pub fn is_applicable(definition: &Definition, target: PolicyTarget) -> bool {
    let unsupported: &[&str] = match target {
        PolicyTarget::Exchange => return true,
        PolicyTarget::Queue(QueueType::Classic) => &CLASSIC_UNSUPPORTED,
        PolicyTarget::Queue(QueueType::Quorum) => &QUORUM_UNSUPPORTED,
    };
    !definition
        .keys()
        .any(|key| unsupported.contains(&key.as_str()))
}

/// `rabbit_policy:merge_operator_definitions/2`.
pub fn merge_operator_definitions(
    policy: Option<&Definition>,
    operator: Option<&Definition>,
) -> Definition {
    let mut merged = policy.cloned().unwrap_or_default();
    for (key, op_value) in operator.into_iter().flatten() {
        let value = match merged.get(key) {
            Some(value) => merge_policy_value(key, value, op_value),
            None => op_value.clone(),
        };
        merged.insert(key.clone(), value);
    }
    merged
}

/// `rabbit_policies:merge_policy_value/3`: the stricter limit, else the operator's value.
fn merge_policy_value(key: &str, value: &Value, op_value: &Value) -> Value {
    const SMALLER_WINS: [&str; 7] = [
        "message-ttl",
        "max-length",
        "max-length-bytes",
        "max-in-memory-length",
        "max-in-memory-bytes",
        "expires",
        "delivery-limit",
    ];
    if key == "target-group-size" {
        // `rabbit_quorum_queue:merge_policy_value/3`: the larger.
        if let (Some(a), Some(b)) = (value.as_i64(), op_value.as_i64()) {
            return Value::from(a.max(b));
        }
    }
    if SMALLER_WINS.contains(&key) {
        if let (Some(a), Some(b)) = (value.as_i64(), op_value.as_i64()) {
            return Value::from(a.min(b));
        }
    }
    op_value.clone()
}

/// Keys a policy may set (`policy_validator` registrations of RabbitMQ 3.13's broker).
const POLICY_KEYS: [&str; 27] = [
    "alternate-exchange",
    "consumer-timeout",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "dead-letter-strategy",
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "queue-mode",
    "queue-version",
    "overflow",
    "delivery-limit",
    "max-age",
    "stream-max-segment-size-bytes",
    "stream-filter-size-bytes",
    "queue-leader-locator",
    "initial-cluster-size",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-sync-batch-size",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "target-group-size",
];

/// Keys an operator policy may set (`operator_policy_validator` registrations).
const OPERATOR_POLICY_KEYS: [&str; 13] = [
    "expires",
    "message-ttl",
    "max-length",
    "max-length-bytes",
    "max-in-memory-length",
    "max-in-memory-bytes",
    "delivery-limit",
    "queue-version",
    "overflow",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "target-group-size",
];

/// RabbitMQ's `?MAX_STREAM_MAX_SEGMENT_SIZE`.
const STREAM_MAX_SEGMENT_SIZE_MAX: i64 = 3_000_000_000;

/// Checks a definition as RabbitMQ's policy validators do; Err is the error line RabbitMQ
/// prints (without the "Validation failed" heading).
pub fn validate_definition(kind: PolicyKind, definition: &Definition) -> Result<(), String> {
    if definition.is_empty() {
        return Err("no policy provided".into());
    }
    let allowed: &[&str] = match kind {
        PolicyKind::Policy => &POLICY_KEYS,
        PolicyKind::Operator => &OPERATOR_POLICY_KEYS,
    };
    let (known, unknown): (Vec<_>, Vec<_>) = definition
        .iter()
        .partition(|(key, _)| allowed.contains(&key.as_str()));
    for (key, value) in &known {
        if !key.starts_with("ha-") {
            validate_key(key, value)?;
        }
    }
    validate_ha(definition)?;
    if !unknown.is_empty() {
        let terms: Vec<String> = unknown
            .iter()
            .map(|(key, value)| format!("{{{},{}}}", binary(key), erlang_term(value)))
            .collect();
        return Err(format!(
            "[{}] are not recognised policy settings",
            terms.join(",")
        ));
    }
    Ok(())
}

/// `rabbit_policies:validate_policy0/2` (and `rabbit_quorum_queue:validate_policy/1`).
fn validate_key(key: &str, value: &Value) -> Result<(), String> {
    let int = value.as_i64().filter(|_| value.is_i64() || value.is_u64());
    let text = value.as_str();
    let at_least = |min: i64| int.is_some_and(|i| i >= min);
    let one_of = |options: &[&str]| text.is_some_and(|t| options.contains(&t));
    let (ok, what) = match key {
        "alternate-exchange" => (text.is_some(), "is not a valid alternate exchange name"),
        "consumer-timeout" => (at_least(0), "is not a valid consumer timeout"),
        "dead-letter-exchange" => (text.is_some(), "is not a valid dead letter exchange name"),
        "dead-letter-routing-key" => (text.is_some(), "is not a valid dead letter routing key"),
        "dead-letter-strategy" => (
            one_of(&["at-most-once", "at-least-once"]),
            "is not a valid dead letter strategy",
        ),
        "message-ttl" => (at_least(0), "is not a valid message TTL"),
        "expires" => (at_least(1), "is not a valid queue expiry"),
        "max-length" => (at_least(0), "is not a valid maximum length"),
        "max-length-bytes" => (at_least(0), "is not a valid maximum length in bytes"),
        "max-in-memory-length" | "max-in-memory-bytes" => {
            (at_least(0), "is not a valid maximum memory in bytes")
        }
        "queue-mode" => (
            one_of(&["default", "lazy"]),
            "is not a valid queue-mode value",
        ),
        "queue-version" => (
            int.is_some_and(|i| i == 1 || i == 2),
            "is not a valid queue-version value",
        ),
        "overflow" => (
            one_of(&["drop-head", "reject-publish", "reject-publish-dlx"]),
            "is not a valid overflow value",
        ),
        "delivery-limit" => (at_least(0), "is not a valid delivery limit"),
        "max-age" => (text.is_some_and(valid_max_age), "is not a valid max age"),
        "queue-leader-locator" => (
            one_of(&["client-local", "balanced", "random", "least-leaders"]),
            "is not a valid queue leader locator value",
        ),
        "initial-cluster-size" => (at_least(0), "is not a valid cluster size"),
        "stream-max-segment-size-bytes" => (
            int.is_some_and(|i| (0..=STREAM_MAX_SEGMENT_SIZE_MAX).contains(&i)),
            "is not a valid segment size",
        ),
        "stream-filter-size-bytes" => (
            int.is_some_and(|i| (16..=255).contains(&i)),
            "is not a valid filter size. Valid range is 16-255",
        ),
        "target-group-size" => (at_least(1), "is not a valid qq target count value"),
        _ => (true, ""),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{} {what}", erlang_term(value)))
    }
}

/// `rabbit_amqqueue:check_max_age/1`: a positive number and a unit of Y, M, D, h, m or s.
fn valid_max_age(text: &str) -> bool {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    number.parse::<u64>().is_ok_and(|n| n > 0) && ["Y", "M", "D", "h", "m", "s"].contains(&unit)
}

/// `rabbit_mirror_queue_misc:validate_policy/1`. Classic mirroring is permitted (deprecated)
/// in 3.13, so its keys are accepted; one node has no mirrors, so they change nothing.
fn validate_ha(definition: &Definition) -> Result<(), String> {
    let mode = definition.get("ha-mode");
    let others = [
        "ha-params",
        "ha-sync-mode",
        "ha-sync-batch-size",
        "ha-promote-on-shutdown",
        "ha-promote-on-failure",
    ];
    let Some(mode) = mode else {
        if others.iter().any(|key| definition.contains_key(*key)) {
            return Err(
                "ha-mode must be specified to specify ha-params, ha-sync-mode or \
                 ha-promote-on-shutdown"
                    .into(),
            );
        }
        return Ok(());
    };
    let params = definition.get("ha-params");
    match (mode.as_str(), params) {
        (Some("all"), None) => {}
        (Some("all"), Some(_)) => return Err("ha-mode=\"all\" does not take parameters".into()),
        (Some("exactly"), Some(n)) if n.as_i64().is_some_and(|n| n > 0) && !n.is_f64() => {}
        (Some("exactly"), n) => {
            return Err(format!(
                "ha-mode=\"exactly\" takes an integer, {} given",
                n.map_or("none".into(), erlang_term)
            ))
        }
        (Some("nodes"), Some(Value::Array(nodes))) => {
            if nodes.is_empty() {
                return Err("ha-mode=\"nodes\" list must be non-empty".into());
            }
            let invalid: Vec<&Value> = nodes.iter().filter(|n| !n.is_string()).collect();
            if !invalid.is_empty() {
                let terms: Vec<String> = invalid.into_iter().map(erlang_term).collect();
                return Err(format!(
                    "ha-mode=\"nodes\" takes a list of strings, [{}] was not a string",
                    terms.join(",")
                ));
            }
        }
        (Some("nodes"), n) => {
            return Err(format!(
                "ha-mode=\"nodes\" takes a list, {} given",
                n.map_or("none".into(), erlang_term)
            ))
        }
        _ => {
            return Err(format!(
                "{} is not a valid ha-mode value",
                erlang_term(mode)
            ))
        }
    }
    let choice = |key: &str, options: [&str; 2], text: &str| -> Result<(), String> {
        match definition.get(key) {
            Some(value) if !value.as_str().is_some_and(|v| options.contains(&v)) => {
                Err(format!("{key} must be {text}, got {}", erlang_term(value)))
            }
            _ => Ok(()),
        }
    };
    choice(
        "ha-sync-mode",
        ["manual", "automatic"],
        "\"manual\" or \"automatic\"",
    )?;
    if let Some(size) = definition.get("ha-sync-batch-size") {
        if size.as_i64().is_none_or(|n| n <= 0) || size.is_f64() {
            return Err(format!(
                "ha-sync-batch-size takes an integer greater than 0, {} given",
                erlang_term(size)
            ));
        }
    }
    choice(
        "ha-promote-on-shutdown",
        ["always", "when-synced"],
        "\"always\" or \"when-synced\"",
    )?;
    choice(
        "ha-promote-on-failure",
        ["always", "when-synced"],
        "\"always\" or \"when-synced\"",
    )
}

/// A JSON value as Erlang's `~tp` prints the term RabbitMQ decoded it to.
pub fn erlang_term(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(u)) => u.to_string(),
            _ => format!("{:?}", n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => binary(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(erlang_term).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{} => {}", binary(k), erlang_term(v)))
                .collect();
            format!("#{{{}}}", items.join(","))
        }
    }
}

/// A binary as `~tp` prints it: `<<"text">>`, with `/utf8` when it is not ASCII.
fn binary(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
    if text.is_ascii() {
        format!("<<\"{escaped}\">>")
    } else {
        format!("<<\"{escaped}\"/utf8>>")
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
