//! Who may do what, and the operator's settings that are not exchanges, queues or bindings:
//! vhost metadata and limits, users with salted password hashes and tags, permissions, topic
//! permissions, policies and operator policies. One copy per shard, inside the `Registry`,
//! changed only through `AccessDelta`s; permission regexes are compiled once per shard as a
//! change is applied, so an AMQP operation checks its permission without asking another core.
//!
//! RabbitMQ's rules (docs/rabbitmq-compatibility.md §18): a permission is three regexes
//! (configure, write, read) matched anywhere in a resource name; `""` matches nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::vhost::access_delta::AccessDelta;
use crate::vhost::password::{self, HashingAlgorithm};
pub use crate::vhost::user_limits::UserLimits;

/// The tag that opens everything over HTTP (and `rabbitmqctl`-style administration).
pub const TAG_ADMINISTRATOR: &str = "administrator";
pub const TAG_MONITORING: &str = "monitoring";
pub const TAG_POLICYMAKER: &str = "policymaker";
pub const TAG_MANAGEMENT: &str = "management";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// `base64(salt ++ digest)`; empty: the user cannot log in with a password.
    pub password_hash: String,
    pub hashing_algorithm: HashingAlgorithm,
    pub tags: Vec<String>,
}

impl User {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|own| own == tag)
    }
}

/// What `vhost.put` describes besides the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VHostMetadata {
    pub description: String,
    pub tags: Vec<String>,
    pub default_queue_type: String,
}

/// Per-vhost limits; None is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VHostLimits {
    pub max_connections: Option<i64>,
    pub max_queues: Option<i64>,
}

impl VHostLimits {
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_queues.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermission {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// A user policy or an operator policy (which only operators set, and whose numeric limits
/// win when stricter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    Policy,
    Operator,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub kind: PolicyKind,
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    /// `all`, `queues`, `exchanges`, `classic_queues`, `quorum_queues` or `streams`.
    pub apply_to: String,
    /// The policy's keys (`max-length`, `message-ttl`, ...) as JSON, as RabbitMQ keeps them.
    pub definition: serde_json::Map<String, serde_json::Value>,
    pub priority: i64,
}

/// A compiled permission regex.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// `""`: matches no name.
    Nothing,
    /// `.*` (and `^.*`, `^.*$`): matches every name without running a regex.
    Everything,
    Regex(regex::Regex),
}

impl Pattern {
    /// Compiles a RabbitMQ permission or policy pattern; Err is the regex error's text.
    pub fn compile(pattern: &str) -> Result<Pattern, String> {
        match pattern {
            "" => Ok(Pattern::Nothing),
            ".*" | "^.*" | "^.*$" | ".*$" => Ok(Pattern::Everything),
            _ => regex::Regex::new(pattern)
                .map(Pattern::Regex)
                .map_err(|error| error.to_string()),
        }
    }

    /// True if the pattern matches anywhere in `name` (RabbitMQ's `re:run`, unanchored).
    pub fn matches(&self, name: &[u8]) -> bool {
        match self {
            Pattern::Nothing => false,
            Pattern::Everything => true,
            Pattern::Regex(regex) => std::str::from_utf8(name).is_ok_and(|s| regex.is_match(s)),
        }
    }
}

/// A permission with its three patterns compiled.
#[derive(Debug, Clone)]
pub struct CompiledPermission {
    pub permission: Permission,
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

/// A topic permission with its patterns compiled (they may hold `{username}`-style variables
/// in RabbitMQ; those are expanded when checked).
#[derive(Debug, Clone)]
pub struct CompiledTopicPermission {
    pub permission: TopicPermission,
    pub write: Pattern,
    pub read: Pattern,
}

/// One vhost's access-side state.
#[derive(Debug, Clone, Default)]
pub struct VHostAccess {
    pub metadata: VHostMetadata,
    pub limits: VHostLimits,
    /// Firehose tracing (`trace_on`); not durable.
    pub tracing: bool,
}

/// Users, vhosts' metadata, permissions and policies of one shard's copy.
#[derive(Debug, Clone, Default)]
pub struct AccessState {
    pub vhosts: BTreeMap<String, VHostAccess>,
    pub users: BTreeMap<String, User>,
    /// The limits of users that have any, by user.
    pub user_limits: BTreeMap<String, UserLimits>,
    /// By (user, vhost).
    pub permissions: BTreeMap<(String, String), CompiledPermission>,
    /// By (user, vhost, exchange).
    pub topic_permissions: BTreeMap<(String, String, String), CompiledTopicPermission>,
    /// By (kind, vhost, name).
    pub policies: BTreeMap<(PolicyKind, String, String), Policy>,
}

/// The durable form of `AccessState`, the access part of a metadata snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AccessDocument {
    pub vhosts: Vec<VHostEntry>,
    pub users: Vec<User>,
    /// Absent in documents written before users had limits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_limits: Vec<UserLimitsEntry>,
    pub permissions: Vec<Permission>,
    pub topic_permissions: Vec<TopicPermission>,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VHostEntry {
    pub name: String,
    pub metadata: VHostMetadata,
    pub limits: VHostLimits,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserLimitsEntry {
    pub user: String,
    pub limits: UserLimits,
}

impl AccessState {
    /// The user's limits; empty for a user without any (or no such user).
    pub fn limits_of(&self, user: &str) -> UserLimits {
        self.user_limits.get(user).copied().unwrap_or_default()
    }

    /// The user if `password` is theirs.
    pub fn authenticate(&self, user: &str, password: &[u8]) -> Option<&User> {
        let found = self.users.get(user)?;
        password::check_password(found.hashing_algorithm, &found.password_hash, password)
            .then_some(found)
    }

    pub fn permission(&self, user: &str, vhost: &str) -> Option<&CompiledPermission> {
        self.permissions.get(&(user.to_owned(), vhost.to_owned()))
    }

    /// The topic permissions of a user in a vhost for one exchange.
    pub fn topic_permission(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
    ) -> Option<&CompiledTopicPermission> {
        self.topic_permissions
            .get(&(user.to_owned(), vhost.to_owned(), exchange.to_owned()))
    }

    /// The vhosts `user` has a permission in.
    pub fn user_vhosts<'a>(&'a self, user: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.permissions
            .keys()
            .filter(move |(u, _)| u == user)
            .map(|(_, vhost)| vhost.as_str())
    }

    /// Applies a change decided (and checked) by the metadata shard or read back from the
    /// log after `check_delta` accepted it. Vhost creation and removal in the routing part of
    /// the registry is the registry's business.
    pub fn apply(&mut self, delta: &AccessDelta) {
        match delta {
            AccessDelta::VHostPut { name, metadata } => {
                self.vhosts.entry(name.clone()).or_default().metadata = metadata.clone();
            }
            AccessDelta::VHostDeleted { name } => {
                self.vhosts.remove(name);
                self.permissions.retain(|(_, vhost), _| vhost != name);
                self.topic_permissions
                    .retain(|(_, vhost, _), _| vhost != name);
                self.policies.retain(|(_, vhost, _), _| vhost != name);
            }
            AccessDelta::VHostLimitsSet { vhost, limits } => {
                if let Some(entry) = self.vhosts.get_mut(vhost) {
                    entry.limits = *limits;
                }
            }
            AccessDelta::TracingSet { vhost, enabled } => {
                if let Some(entry) = self.vhosts.get_mut(vhost) {
                    entry.tracing = *enabled;
                }
            }
            AccessDelta::UserPut(user) => {
                self.users.insert(user.name.clone(), user.clone());
            }
            AccessDelta::UserDeleted { name } => {
                self.users.remove(name);
                self.user_limits.remove(name);
                self.permissions.retain(|(user, _), _| user != name);
                self.topic_permissions
                    .retain(|(user, _, _), _| user != name);
            }
            AccessDelta::UserLimitsSet { user, limits } => {
                if limits.is_empty() {
                    self.user_limits.remove(user);
                } else if self.users.contains_key(user) {
                    self.user_limits.insert(user.clone(), *limits);
                }
            }
            AccessDelta::PermissionSet(permission) => {
                let compiled = compile_permission(permission).expect("checked before applying");
                let key = (permission.user.clone(), permission.vhost.clone());
                self.permissions.insert(key, compiled);
            }
            AccessDelta::PermissionCleared { user, vhost } => {
                self.permissions.remove(&(user.clone(), vhost.clone()));
            }
            AccessDelta::TopicPermissionSet(permission) => {
                let compiled = compile_topic_permission(permission).expect("checked before");
                let key = (
                    permission.user.clone(),
                    permission.vhost.clone(),
                    permission.exchange.clone(),
                );
                self.topic_permissions.insert(key, compiled);
            }
            AccessDelta::TopicPermissionCleared {
                user,
                vhost,
                exchange,
            } => self.topic_permissions.retain(|(u, v, e), _| {
                !(u == user && v == vhost && exchange.as_ref().is_none_or(|x| x == e))
            }),
            AccessDelta::PolicySet(policy) => {
                let key = (policy.kind, policy.vhost.clone(), policy.name.clone());
                self.policies.insert(key, policy.clone());
            }
            AccessDelta::PolicyCleared { kind, vhost, name } => {
                self.policies.remove(&(*kind, vhost.clone(), name.clone()));
            }
        }
    }

    /// Why `delta` does not fit this state, if it does not: what the metadata shard refuses
    /// (as the peer's fault) and what replay refuses (as a log that does not fit together).
    /// `check_delta` for a change read back from the metadata log: a stored policy is taken
    /// as long as its vhost exists and its pattern compiles, so a stricter check of
    /// definition keys in a later version never stops a broker from starting.
    pub fn check_stored(&self, delta: &AccessDelta) -> Result<(), AccessRefusal> {
        match delta {
            AccessDelta::PolicySet(policy) => {
                if !self.vhosts.contains_key(&policy.vhost) {
                    return Err(AccessRefusal::NotFound(format!(
                        "vhost '{}' does not exist",
                        policy.vhost
                    )));
                }
                crate::vhost::policy::compile_pattern(&policy.pattern)
                    .map(|_| ())
                    .map_err(|error| AccessRefusal::BadRequest(error.to_string()))
            }
            other => self.check_delta(other),
        }
    }

    pub fn check_delta(&self, delta: &AccessDelta) -> Result<(), AccessRefusal> {
        use AccessRefusal::{BadRequest, NotFound};
        let vhost_exists = |name: &String| {
            if self.vhosts.contains_key(name) {
                Ok(())
            } else {
                Err(NotFound(format!("vhost '{name}' does not exist")))
            }
        };
        let user_exists = |name: &String| {
            if self.users.contains_key(name) {
                Ok(())
            } else {
                Err(NotFound(format!("user '{name}' does not exist")))
            }
        };
        match delta {
            AccessDelta::VHostPut { name, .. } => check_vhost_name(name),
            AccessDelta::VHostDeleted { name } => vhost_exists(name),
            AccessDelta::VHostLimitsSet { vhost, limits } => {
                vhost_exists(vhost)?;
                let negative = [limits.max_connections, limits.max_queues]
                    .into_iter()
                    .flatten()
                    .any(|limit| limit < -1);
                if negative {
                    return Err(BadRequest("limits must be -1 or more".into()));
                }
                Ok(())
            }
            AccessDelta::TracingSet { vhost, .. } => vhost_exists(vhost),
            AccessDelta::UserPut(user) => {
                if user.name.is_empty() {
                    return Err(BadRequest("user name must not be empty".into()));
                }
                if !password::is_valid_hash(user.hashing_algorithm, &user.password_hash) {
                    return Err(BadRequest("invalid password_hash".into()));
                }
                Ok(())
            }
            AccessDelta::UserDeleted { name } => user_exists(name),
            AccessDelta::UserLimitsSet { user, .. } => user_exists(user),
            AccessDelta::PermissionSet(permission) => {
                user_exists(&permission.user)?;
                vhost_exists(&permission.vhost)?;
                compile_permission(permission)
                    .map(|_| ())
                    .map_err(BadRequest)
            }
            AccessDelta::PermissionCleared { user, vhost } => {
                user_exists(user)?;
                vhost_exists(vhost)
            }
            AccessDelta::TopicPermissionSet(permission) => {
                user_exists(&permission.user)?;
                vhost_exists(&permission.vhost)?;
                compile_topic_permission(permission)
                    .map(|_| ())
                    .map_err(BadRequest)
            }
            AccessDelta::TopicPermissionCleared { user, vhost, .. } => {
                user_exists(user)?;
                vhost_exists(vhost)
            }
            AccessDelta::PolicySet(policy) => {
                vhost_exists(&policy.vhost)?;
                check_policy(policy)
            }
            AccessDelta::PolicyCleared { kind, vhost, name } => {
                vhost_exists(vhost)?;
                if self
                    .policies
                    .contains_key(&(*kind, vhost.clone(), name.clone()))
                {
                    Ok(())
                } else {
                    Err(NotFound(format!("policy '{name}' does not exist")))
                }
            }
        }
    }

    /// The durable part, in a stable order.
    pub fn document(&self) -> AccessDocument {
        AccessDocument {
            vhosts: self
                .vhosts
                .iter()
                .map(|(name, vhost)| VHostEntry {
                    name: name.clone(),
                    metadata: vhost.metadata.clone(),
                    limits: vhost.limits,
                })
                .collect(),
            users: self.users.values().cloned().collect(),
            user_limits: self
                .user_limits
                .iter()
                .map(|(user, limits)| UserLimitsEntry {
                    user: user.clone(),
                    limits: *limits,
                })
                .collect(),
            permissions: self
                .permissions
                .values()
                .map(|compiled| compiled.permission.clone())
                .collect(),
            topic_permissions: self
                .topic_permissions
                .values()
                .map(|compiled| compiled.permission.clone())
                .collect(),
            policies: self.policies.values().cloned().collect(),
        }
    }

    /// The deltas that build `document` from nothing, each checked against the state before
    /// it; Err names the first that does not fit.
    pub fn from_document(document: &AccessDocument) -> Result<AccessState, AccessRefusal> {
        let mut state = AccessState::default();
        for delta in document.deltas() {
            state.check_stored(&delta)?;
            state.apply(&delta);
        }
        Ok(state)
    }
}

impl AccessDocument {
    /// The changes that create what the document holds, vhosts and users first.
    pub fn deltas(&self) -> Vec<AccessDelta> {
        let mut deltas = Vec::new();
        for vhost in &self.vhosts {
            deltas.push(AccessDelta::VHostPut {
                name: vhost.name.clone(),
                metadata: vhost.metadata.clone(),
            });
            if !vhost.limits.is_empty() {
                deltas.push(AccessDelta::VHostLimitsSet {
                    vhost: vhost.name.clone(),
                    limits: vhost.limits,
                });
            }
        }
        deltas.extend(self.users.iter().cloned().map(AccessDelta::UserPut));
        deltas.extend(
            self.user_limits
                .iter()
                .map(|entry| AccessDelta::UserLimitsSet {
                    user: entry.user.clone(),
                    limits: entry.limits,
                }),
        );
        deltas.extend(
            self.permissions
                .iter()
                .cloned()
                .map(AccessDelta::PermissionSet),
        );
        deltas.extend(
            self.topic_permissions
                .iter()
                .cloned()
                .map(AccessDelta::TopicPermissionSet),
        );
        deltas.extend(self.policies.iter().cloned().map(AccessDelta::PolicySet));
        deltas
    }
}

/// Why an access change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessRefusal {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
}

fn check_vhost_name(name: &str) -> Result<(), AccessRefusal> {
    if name.is_empty() || name.len() > 255 {
        return Err(AccessRefusal::BadRequest(
            "vhost name must be 1 to 255 bytes".into(),
        ));
    }
    Ok(())
}

fn compile_permission(permission: &Permission) -> Result<CompiledPermission, String> {
    Ok(CompiledPermission {
        permission: permission.clone(),
        configure: Pattern::compile(&permission.configure)?,
        write: Pattern::compile(&permission.write)?,
        read: Pattern::compile(&permission.read)?,
    })
}

fn compile_topic_permission(
    permission: &TopicPermission,
) -> Result<CompiledTopicPermission, String> {
    Ok(CompiledTopicPermission {
        permission: permission.clone(),
        write: Pattern::compile(&with_sample_variables(&permission.write))?,
        read: Pattern::compile(&with_sample_variables(&permission.read))?,
    })
}

/// A topic permission with its variables (`{username}`, `{vhost}`, `{client_id}`) replaced by
/// a plain name: what must compile for the permission to be accepted (the regex syntax reads
/// a bare `{name}` as a broken repetition).
fn with_sample_variables(pattern: &str) -> String {
    if !pattern.contains('{') {
        return pattern.to_owned();
    }
    pattern
        .replace("{username}", "user")
        .replace("{vhost}", "vhost")
        .replace("{client_id}", "client")
}

/// The apply-to values RabbitMQ 3.13 accepts.
pub const APPLY_TO_VALUES: [&str; 6] = [
    "all",
    "queues",
    "exchanges",
    "classic_queues",
    "quorum_queues",
    "streams",
];

/// RabbitMQ's `rabbit_policy:validate/5`: the pattern, apply-to and every key of the
/// definition, with RabbitMQ's texts (`rabbit_runtime_parameters:format_error/1` puts them
/// under "Validation failed").
fn check_policy(policy: &Policy) -> Result<(), AccessRefusal> {
    let failed = |line: String| AccessRefusal::BadRequest(format!("Validation failed\n\n{line}\n"));
    if policy.name.is_empty() {
        return Err(AccessRefusal::BadRequest(
            "policy name must not be empty".into(),
        ));
    }
    crate::vhost::policy::compile_pattern(&policy.pattern).map_err(|error| {
        failed(format!(
            "pattern should be regular expression but is invalid: {error}"
        ))
    })?;
    if !APPLY_TO_VALUES.contains(&policy.apply_to.as_str()) {
        return Err(failed(format!(
            "apply-to '{}' unrecognised; should be one of: 'queues', 'classic_queues',  \
             'quorum_queues', 'streams', 'exchanges', or 'all'",
            policy.apply_to
        )));
    }
    crate::vhost::policy::validate_definition(policy.kind, &policy.definition).map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            name: name.into(),
            password_hash: password::hash_password(HashingAlgorithm::Sha256, b"pw"),
            hashing_algorithm: HashingAlgorithm::Sha256,
            tags: vec![TAG_ADMINISTRATOR.into()],
        }
    }

    fn permission(user: &str, vhost: &str, configure: &str) -> Permission {
        Permission {
            user: user.into(),
            vhost: vhost.into(),
            configure: configure.into(),
            write: ".*".into(),
            read: "".into(),
        }
    }

    fn state_with(deltas: &[AccessDelta]) -> AccessState {
        let mut state = AccessState::default();
        for delta in deltas {
            state.check_delta(delta).expect("delta fits");
            state.apply(delta);
        }
        state
    }

    fn vhost(name: &str) -> AccessDelta {
        AccessDelta::VHostPut {
            name: name.into(),
            metadata: VHostMetadata::default(),
        }
    }

    #[test]
    fn patterns_match_anywhere_and_empty_matches_nothing() {
        let pattern = Pattern::compile("^amq\\.gen").expect("valid");
        assert!(pattern.matches(b"amq.gen-1"));
        assert!(!pattern.matches(b"x.amq.gen"));
        assert!(Pattern::compile("gen").expect("valid").matches(b"x.gen.y"));
        assert!(!Pattern::compile("").expect("valid").matches(b""));
        assert!(Pattern::compile(".*").expect("valid").matches(b""));
        assert!(Pattern::compile("(").is_err());
    }

    #[test]
    fn a_user_logs_in_with_their_password_only() {
        let state = state_with(&[AccessDelta::UserPut(user("u"))]);
        assert!(state.authenticate("u", b"pw").is_some());
        assert!(state.authenticate("u", b"px").is_none());
        assert!(state.authenticate("v", b"pw").is_none());
    }

    #[test]
    fn deleting_a_user_or_vhost_removes_their_permissions() {
        let mut state = state_with(&[
            vhost("a"),
            vhost("b"),
            AccessDelta::UserPut(user("u")),
            AccessDelta::PermissionSet(permission("u", "a", ".*")),
            AccessDelta::PermissionSet(permission("u", "b", ".*")),
        ]);
        state.apply(&AccessDelta::VHostDeleted { name: "a".into() });
        assert!(state.permission("u", "a").is_none());
        assert!(state.permission("u", "b").is_some());
        state.apply(&AccessDelta::UserDeleted { name: "u".into() });
        assert!(state.permission("u", "b").is_none());
    }

    #[test]
    fn changes_naming_missing_objects_or_bad_regexes_are_refused() {
        let state = state_with(&[vhost("a"), AccessDelta::UserPut(user("u"))]);
        let missing_vhost = AccessDelta::PermissionSet(permission("u", "b", ".*"));
        assert!(matches!(
            state.check_delta(&missing_vhost),
            Err(AccessRefusal::NotFound(_))
        ));
        let bad_regex = AccessDelta::PermissionSet(permission("u", "a", "("));
        assert!(matches!(
            state.check_delta(&bad_regex),
            Err(AccessRefusal::BadRequest(_))
        ));
    }

    #[test]
    fn the_document_rebuilds_the_same_state() {
        let state = state_with(&[
            vhost("a"),
            AccessDelta::VHostLimitsSet {
                vhost: "a".into(),
                limits: VHostLimits {
                    max_connections: Some(3),
                    max_queues: None,
                },
            },
            AccessDelta::UserPut(user("u")),
            AccessDelta::UserLimitsSet {
                user: "u".into(),
                limits: UserLimits {
                    max_connections: Some(2),
                    max_channels: Some(-1),
                },
            },
            AccessDelta::PermissionSet(permission("u", "a", "^x")),
        ]);
        let document = state.document();
        assert_eq!(document.user_limits.len(), 1);
        let json = serde_json::to_string(&document).expect("serialises");
        let read: AccessDocument = serde_json::from_str(&json).expect("parses");
        assert_eq!(read, document);
        let rebuilt = AccessState::from_document(&read).expect("fits");
        assert_eq!(rebuilt.document(), document);
    }

    #[test]
    fn a_users_limits_outlive_a_put_and_go_with_the_user() {
        let limits = UserLimits {
            max_connections: Some(1),
            max_channels: None,
        };
        let mut state = state_with(&[
            AccessDelta::UserPut(user("u")),
            AccessDelta::UserLimitsSet {
                user: "u".into(),
                limits,
            },
            AccessDelta::UserPut(user("u")),
        ]);
        assert_eq!(state.limits_of("u"), limits);
        state.apply(&AccessDelta::UserDeleted { name: "u".into() });
        assert!(state.user_limits.is_empty());
        let missing = AccessDelta::UserLimitsSet {
            user: "u".into(),
            limits,
        };
        assert!(matches!(
            state.check_delta(&missing),
            Err(AccessRefusal::NotFound(_))
        ));
        // A document from before users had limits reads as none.
        let old =
            r#"{"vhosts":[],"users":[],"permissions":[],"topic_permissions":[],"policies":[]}"#;
        let read: AccessDocument = serde_json::from_str(old).expect("parses");
        assert!(read.user_limits.is_empty());
    }
}
