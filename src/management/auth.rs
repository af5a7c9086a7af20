//! Who is asking: HTTP Basic credentials checked against the broker's users (the same users
//! and passwords as AMQP, from the shard's copy of the access state), and the tag each kind
//! of request needs (docs/management-api.md, "Users and tags").

use std::collections::BTreeSet;
use std::net::SocketAddr;

use base64::Engine;
use hyper::header::HeaderValue;

use crate::shard::Shard;
use crate::vhost::access::{TAG_ADMINISTRATOR, TAG_MANAGEMENT, TAG_MONITORING, TAG_POLICYMAKER};

/// RabbitMQ's reason for a vhost the caller has no permission in.
pub const VHOST_REFUSED: &str = "User not authorised to access virtual host";

/// RabbitMQ's reason for a policy change by a user who may not make it.
pub const OBJECT_REFUSED: &str = "User not authorised to access object";

/// Which of a permission's three regexes an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// An authenticated management user.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub tags: Vec<String>,
    /// Vhosts the user has a permission in (what a `management`-only user may see).
    pub vhosts: BTreeSet<String>,
}

/// Why a request is refused with 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization` header: answered with the Basic challenge.
    NoCredentials,
    /// Unknown user, wrong password, or not Basic.
    LoginFailed,
    /// Authenticated, but without the tag the request needs.
    MissingTag(&'static str),
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoCredentials => "Not_Authorized",
            Refusal::LoginFailed => "Login failed",
            Refusal::MissingTag(reason) => reason,
        }
    }
}

/// Checks the request's Basic credentials: the user and their tags, or why not. `guest`
/// logs in only from loopback addresses when the broker says so (as over AMQP).
pub fn authenticate(
    shard: &Shard,
    peer: SocketAddr,
    header: Option<&HeaderValue>,
) -> Result<Caller, Refusal> {
    let header = header.ok_or(Refusal::NoCredentials)?;
    let (user, password) = basic_credentials(header).ok_or(Refusal::LoginFailed)?;
    if user == "guest" && shard.config.guest_loopback_only && !peer.ip().is_loopback() {
        return Err(Refusal::LoginFailed);
    }
    let registry = shard.registry.borrow();
    let access = registry.access();
    let found = access
        .authenticate(&user, password.as_bytes())
        .ok_or(Refusal::LoginFailed)?;
    Ok(Caller {
        name: found.name.clone(),
        tags: found.tags.clone(),
        vhosts: access.user_vhosts(&user).map(str::to_owned).collect(),
    })
}

/// `Basic base64(user:password)` split into its parts.
fn basic_credentials(header: &HeaderValue) -> Option<(String, String)> {
    let text = header.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

impl Caller {
    fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|own| own == tag)
    }

    pub fn is_administrator(&self) -> bool {
        self.has(TAG_ADMINISTRATOR)
    }

    /// Sees every vhost, connection and channel (`monitoring` or `administrator`).
    pub fn sees_everything(&self) -> bool {
        self.has(TAG_MONITORING) || self.is_administrator()
    }

    /// May see objects of `vhost`.
    pub fn sees_vhost(&self, vhost: &str) -> bool {
        self.sees_everything() || self.vhosts.contains(vhost)
    }

    pub fn is_policymaker(&self) -> bool {
        self.has(TAG_POLICYMAKER) || self.is_administrator()
    }

    /// May see a connection or channel of `user`.
    pub fn sees_user(&self, user: &str) -> bool {
        self.sees_everything() || self.name == user
    }
}

/// Any management tag: the floor of every endpoint but the health checks' peers.
pub fn require_management(caller: &Caller) -> Result<(), Refusal> {
    let any = [
        TAG_MANAGEMENT,
        TAG_POLICYMAKER,
        TAG_MONITORING,
        TAG_ADMINISTRATOR,
    ];
    if any.iter().any(|tag| caller.has(tag)) {
        Ok(())
    } else {
        Err(Refusal::MissingTag("Not management user"))
    }
}

/// `monitoring` or `administrator`: node details.
pub fn require_monitoring(caller: &Caller) -> Result<(), Refusal> {
    if caller.sees_everything() {
        Ok(())
    } else {
        Err(Refusal::MissingTag("Not monitor user"))
    }
}

/// `administrator`: closing another user's connection, and the write endpoints to come.
pub fn require_administrator(caller: &Caller) -> Result<(), Refusal> {
    if caller.is_administrator() {
        Ok(())
    } else {
        Err(Refusal::MissingTag("Not administrator user"))
    }
}

/// The caller's AMQP permission for `access` to the resource `name` in `vhost`, checked as
/// the management plugin checks it on declare, delete, bind, publish and get: Err is the 401
/// RabbitMQ answers ("Access refused.").
pub fn require_permission(
    shard: &Shard,
    caller: &Caller,
    vhost: &str,
    access: Access,
    name: &str,
) -> Result<(), Refusal> {
    let registry = shard.registry.borrow();
    let allowed = registry
        .access()
        .permission(&caller.name, vhost)
        .is_some_and(|permission| {
            let pattern = match access {
                Access::Configure => &permission.configure,
                Access::Write => &permission.write,
                Access::Read => &permission.read,
            };
            pattern.matches(name.as_bytes())
        });
    if allowed {
        Ok(())
    } else {
        Err(Refusal::MissingTag("Access refused."))
    }
}
