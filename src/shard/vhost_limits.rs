//! Vhost limits (`max-connections`, `max-queues`), the node's (`--max-connections`,
//! `--max-queues`), the count behind the user limits (`shard::user_limits`), and what follows the deletion of a user or
//! a vhost (its connections close), with RabbitMQ's codes and texts
//! (docs/rabbitmq-compatibility.md §18).
//!
//! Connections per vhost are counted on the metadata shard, the one place every open passes
//! through in order: connection.open asks it for a slot (`admit`) and the slot is given back
//! when the connection ends (`VHostSlot`'s drop). The metadata shard also decides limit
//! changes, so an open is checked against the newest limit, and two shards opening the last
//! free slot at once cannot both get it. It costs one round trip between cores per
//! connection open, none per operation.

use std::cell::RefCell;
use std::rc::Rc;

use crate::exception::Exception;
use crate::fast_map::FastMap;
use crate::ids::{ConnectionId, ShardId};
use crate::protocol::ShortStr;
use crate::shard::endpoint::Revoked;
use crate::shard::message::{Reply, ShardMessage, VHostConnectionChange};
use crate::shard::user_limits::UserCounts;
use crate::shard::Shard;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::delta::MetaDelta;
use crate::vhost::rules::QueueDeclare;
use crate::vhost::{Registry, VHost};

/// Why a connection was not admitted: the limit that is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLimit {
    /// The node's `--max-connections` (RabbitMQ's `connection_max`).
    Node(u32),
    /// The vhost's `max-connections`.
    VHost(i64),
    /// The user's `max-connections`.
    User(i64),
}

/// An admitted connection, as the metadata shard counts it.
struct Admitted {
    vhost: ShortStr,
    user: ShortStr,
    /// Its open channels, as last reported.
    channels: u32,
}

/// The metadata shard's count of open connections, per vhost, per user and in all, and of
/// channels per user.
#[derive(Default)]
pub struct VHostConnections {
    admitted: RefCell<FastMap<ConnectionId, Admitted>>,
    counts: RefCell<FastMap<ShortStr, u32>>,
    users: RefCell<UserCounts>,
}

impl VHostConnections {
    /// Takes a slot in `vhost` for `connection` of `user` unless the node's `node_limit`, the
    /// vhost's `max-connections` or the user's is reached (checked in that order, as RabbitMQ
    /// does); Err is the limit.
    fn admit(
        &self,
        registry: &Registry,
        connection: ConnectionId,
        (vhost, user): (ShortStr, ShortStr),
        node_limit: Option<u32>,
    ) -> Result<(), ConnectionLimit> {
        if let Some(limit) = node_limit {
            if self.admitted.borrow().len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
                return Err(ConnectionLimit::Node(limit));
            }
        }
        let limit = registry
            .access()
            .vhosts
            .get(&vhost.to_string_lossy())
            .and_then(|entry| entry.limits.max_connections)
            .filter(|limit| *limit >= 0);
        let mut counts = self.counts.borrow_mut();
        let count = counts.get(&vhost).copied().unwrap_or(0);
        if let Some(limit) = limit {
            if i64::from(count) >= limit {
                return Err(ConnectionLimit::VHost(limit));
            }
        }
        let user_limits = registry.access().limits_of(&user.to_string_lossy());
        let mut users = self.users.borrow_mut();
        users
            .check_connection(&user, user_limits)
            .map_err(ConnectionLimit::User)?;
        counts.insert(vhost.clone(), count + 1);
        users.connection_opened(&user);
        let admitted = Admitted {
            vhost,
            user,
            channels: 0,
        };
        self.admitted.borrow_mut().insert(connection, admitted);
        Ok(())
    }

    /// Gives back the connection's slot and its channels', if it has one.
    fn release(&self, connection: ConnectionId) {
        let Some(admitted) = self.admitted.borrow_mut().remove(&connection) else {
            return;
        };
        let mut counts = self.counts.borrow_mut();
        if let Some(count) = counts.get_mut(&admitted.vhost) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&admitted.vhost);
            }
        }
        (self.users.borrow_mut()).connection_closed(&admitted.user, admitted.channels);
    }

    /// The connection `from` lives on as `to` (it moved to another shard) with `channels`
    /// open: same vhost and user, same counts.
    pub fn rename(&self, from: ConnectionId, to: ConnectionId, channels: u32) {
        let mut admitted = self.admitted.borrow_mut();
        if let Some(mut moved) = admitted.remove(&from) {
            let before = moved.channels;
            moved.channels = channels;
            (self.users.borrow_mut()).channels_changed(&moved.user, before, channels);
            admitted.insert(to, moved);
        }
    }

    /// One more channel for `connection` unless its user's `max-channels` is reached (Err).
    /// A connection not (or no longer) admitted here is not refused: it is going away.
    fn open_channel(&self, registry: &Registry, connection: ConnectionId) -> Result<(), i64> {
        let mut admitted = self.admitted.borrow_mut();
        let Some(entry) = admitted.get_mut(&connection) else {
            return Ok(());
        };
        let limits = registry.access().limits_of(&entry.user.to_string_lossy());
        (self.users.borrow_mut()).open_channel(&entry.user, limits)?;
        entry.channels += 1;
        Ok(())
    }

    /// `connection` has `open` channels now. Reports about a connection that moved away
    /// (sent before its move was known here) are ignored: the move carried its count.
    fn channels_reported(&self, connection: ConnectionId, open: u32) {
        let mut admitted = self.admitted.borrow_mut();
        if let Some(entry) = admitted.get_mut(&connection) {
            (self.users.borrow_mut()).channels_changed(&entry.user, entry.channels, open);
            entry.channels = open;
        }
    }

    /// Open connections and channels of `user`, on every shard.
    pub fn user_counts(&self, user: &ShortStr) -> (u32, u32) {
        let users = self.users.borrow();
        (users.connections(user), users.channels(user))
    }

    /// Open connections in `vhost`, on every shard.
    pub fn count(&self, vhost: &ShortStr) -> u32 {
        self.counts.borrow().get(vhost).copied().unwrap_or(0)
    }
}

/// Handles a `ShardMessage::VHostConnection` on the metadata shard.
pub fn handle(shard: &Shard, connection: ConnectionId, change: VHostConnectionChange) {
    let connections = &shard.vhost_connections;
    match change {
        VHostConnectionChange::Admit {
            reply_to,
            vhost,
            user,
        } => {
            let node_limit = shard.config.connection_max;
            let registry = shard.registry.borrow();
            let admitted = connections.admit(&registry, connection, (vhost, user), node_limit);
            drop(registry);
            shard.reply(reply_to, Reply::VHostAdmitted(admitted));
        }
        VHostConnectionChange::Release => connections.release(connection),
        VHostConnectionChange::OpenChannel { reply_to } => {
            let admitted = connections.open_channel(&shard.registry.borrow(), connection);
            shard.reply(reply_to, Reply::ChannelAdmitted(admitted));
        }
        VHostConnectionChange::Channels { open } => {
            connections.channels_reported(connection, open);
        }
    }
}

/// A connection's place in its vhost's count, given back when dropped.
pub struct VHostSlot {
    /// None once handed over to another shard (`hand_over`).
    shard: Option<Rc<Shard>>,
    connection: ConnectionId,
}

impl VHostSlot {
    /// The slot of a connection that moved here as `connection`: the metadata shard renamed
    /// it (`ShardMessage::ConnectionMoved`), nothing is admitted again.
    pub fn adopt(shard: &Rc<Shard>, connection: ConnectionId) -> VHostSlot {
        VHostSlot {
            shard: Some(shard.clone()),
            connection,
        }
    }

    /// The connection moves to another shard, which adopts its slot: not given back here.
    pub fn hand_over(mut self) {
        self.shard = None;
    }
}

impl Drop for VHostSlot {
    fn drop(&mut self) {
        let Some(shard) = &self.shard else {
            return;
        };
        shard.send(
            ShardId::METADATA,
            ShardMessage::VHostConnection {
                connection: self.connection,
                change: VHostConnectionChange::Release,
            },
        );
    }
}

/// Asks the metadata shard for a slot in `vhost` for a connection of `user`. The slot exists before the question is
/// sent, so a connection that gives up waiting still gives it back; Err is the limit
/// reached.
pub async fn admit(
    shard: &Rc<Shard>,
    connection: ConnectionId,
    vhost: &ShortStr,
    user: &ShortStr,
) -> Result<VHostSlot, ConnectionLimit> {
    let slot = VHostSlot {
        shard: Some(shard.clone()),
        connection,
    };
    let reply = shard
        .request(ShardId::METADATA, |reply_to| {
            ShardMessage::VHostConnection {
                connection,
                change: VHostConnectionChange::Admit {
                    reply_to,
                    vhost: vhost.clone(),
                    user: user.clone(),
                },
            }
        })
        .await;
    match reply {
        Reply::VHostAdmitted(Ok(())) => Ok(slot),
        Reply::VHostAdmitted(Err(limit)) => Err(limit),
        _ => Err(ConnectionLimit::VHost(0)),
    }
}

/// RabbitMQ's refusal of a new queue in a vhost at its `max-queues` (406, as
/// `rabbit_queue_type:check_vhost_queue_limit` answers): checked by the metadata shard for
/// queues that do not exist yet, from clients and operators alike. Then the node's
/// `--max-queues` (`node_limit`, RabbitMQ's `cluster_queue_limit`, whose text it uses).
pub fn check_queue_limit(
    registry: &Registry,
    vhost: &VHost,
    declare: &QueueDeclare,
    node_limit: Option<u32>,
) -> Result<(), Exception> {
    if declare.passive || vhost.queue(&declare.name).is_some() {
        return Ok(());
    }
    let vhost_name = vhost.name.to_string_lossy();
    let vhost_limit = registry
        .access()
        .vhosts
        .get(&vhost_name)
        .and_then(|entry| entry.limits.max_queues)
        .filter(|limit| *limit >= 0);
    if let Some(limit) = vhost_limit {
        let count = vhost.queues().count();
        if limit == 0 || i64::try_from(count + 1).unwrap_or(i64::MAX) > limit {
            return Err(Exception::precondition_failed(format!(
                "cannot declare queue '{}': queue limit in vhost '{vhost_name}' ({limit}) is reached",
                declare.name
            )));
        }
    }
    if let Some(limit) = node_limit {
        let count: usize = registry.vhosts().map(|vhost| vhost.queues().count()).sum();
        if count >= usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(Exception::precondition_failed(format!(
                "cannot declare queue '{}': queue limit in cluster ({limit}) is reached",
                declare.name
            )));
        }
    }
    Ok(())
}

/// The users and vhosts an update deletes: their connections must close.
pub fn revoked(deltas: &[MetaDelta]) -> Vec<Revoked> {
    deltas
        .iter()
        .filter_map(|delta| match delta {
            MetaDelta::Access(AccessDelta::UserDeleted { name }) => {
                Some(Revoked::User(name.clone()))
            }
            MetaDelta::Access(AccessDelta::VHostDeleted { name }) => {
                Some(Revoked::VHost(name.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Tells every connection of this shard that a user or vhost is gone; theirs close with 320.
pub fn close_revoked(shard: &Shard, revoked: &[Revoked]) {
    if revoked.is_empty() {
        return;
    }
    for endpoint in shard.connections.all() {
        for gone in revoked {
            endpoint.revoked(gone);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vhost::access::{User, UserLimits, VHostLimits, VHostMetadata};
    use crate::vhost::password::HashingAlgorithm;

    fn u() -> ShortStr {
        ShortStr::from_static("u")
    }

    fn registry_with_limit(max_connections: Option<i64>) -> Registry {
        let mut registry = Registry::new();
        registry.apply_access(&AccessDelta::VHostPut {
            name: "v".into(),
            metadata: VHostMetadata::default(),
        });
        registry.apply_access(&AccessDelta::VHostLimitsSet {
            vhost: "v".into(),
            limits: VHostLimits {
                max_connections,
                max_queues: None,
            },
        });
        registry
    }

    #[test]
    fn slots_are_granted_up_to_the_limit_and_given_back_once() {
        let registry = registry_with_limit(Some(2));
        let counts = VHostConnections::default();
        let v = ShortStr::from_static("v");
        let id = |n| ConnectionId::new(ShardId(1), n);
        assert_eq!(
            counts.admit(&registry, id(1), (v.clone(), u()), None),
            Ok(())
        );
        assert_eq!(
            counts.admit(&registry, id(2), (v.clone(), u()), None),
            Ok(())
        );
        assert_eq!(
            counts.admit(&registry, id(3), (v.clone(), u()), None),
            Err(ConnectionLimit::VHost(2))
        );
        // A refused connection's release changes nothing; a release counts once.
        counts.release(id(3));
        assert_eq!(counts.count(&v), 2);
        counts.release(id(1));
        counts.release(id(1));
        assert_eq!(counts.count(&v), 1);
        assert_eq!(
            counts.admit(&registry, id(4), (v.clone(), u()), None),
            Ok(())
        );
    }

    #[test]
    fn zero_admits_nobody_and_minus_one_everybody() {
        let v = ShortStr::from_static("v");
        let counts = VHostConnections::default();
        let id = ConnectionId::new(ShardId(0), 1);
        assert_eq!(
            counts.admit(&registry_with_limit(Some(0)), id, (v.clone(), u()), None),
            Err(ConnectionLimit::VHost(0))
        );
        assert_eq!(
            counts.admit(&registry_with_limit(Some(-1)), id, (v.clone(), u()), None),
            Ok(())
        );
    }

    #[test]
    fn the_node_limit_counts_every_vhost_and_comes_first() {
        let registry = registry_with_limit(Some(0));
        let counts = VHostConnections::default();
        let id = |n| ConnectionId::new(ShardId(0), n);
        let other = ShortStr::from_static("/");
        assert_eq!(
            counts.admit(&registry, id(1), (other.clone(), u()), Some(1)),
            Ok(())
        );
        assert_eq!(
            counts.admit(&registry, id(2), (ShortStr::from_static("v"), u()), Some(1)),
            Err(ConnectionLimit::Node(1))
        );
        counts.release(id(1));
        assert_eq!(
            counts.admit(&registry, id(3), (other, u()), Some(1)),
            Ok(())
        );
    }

    #[test]
    fn the_user_limit_comes_after_the_vhosts_and_counts_a_moved_connection_once() {
        let mut registry = registry_with_limit(Some(5));
        registry.apply_access(&AccessDelta::UserPut(User {
            name: "u".into(),
            password_hash: String::new(),
            hashing_algorithm: HashingAlgorithm::Sha256,
            tags: Vec::new(),
        }));
        registry.apply_access(&AccessDelta::UserLimitsSet {
            user: "u".into(),
            limits: UserLimits {
                max_connections: Some(1),
                max_channels: Some(2),
            },
        });
        let counts = VHostConnections::default();
        let v = ShortStr::from_static("v");
        let id = |shard, n| ConnectionId::new(ShardId(shard), n);
        assert_eq!(
            counts.admit(&registry, id(0, 1), (v.clone(), u()), None),
            Ok(())
        );
        assert_eq!(
            counts.admit(&registry, id(1, 1), (v.clone(), u()), None),
            Err(ConnectionLimit::User(1))
        );
        assert_eq!(counts.count(&v), 1);
        assert_eq!(counts.open_channel(&registry, id(0, 1)), Ok(()));
        // The connection moves with its one channel; a late report from its old shard
        // changes nothing.
        counts.rename(id(0, 1), id(1, 2), 1);
        counts.channels_reported(id(0, 1), 0);
        assert_eq!(counts.user_counts(&u()), (1, 1));
        assert_eq!(counts.open_channel(&registry, id(1, 2)), Ok(()));
        assert_eq!(counts.open_channel(&registry, id(1, 2)), Err(2));
        counts.release(id(1, 2));
        assert_eq!(counts.user_counts(&u()), (0, 0));
    }

    #[test]
    fn deleted_users_and_vhosts_are_revoked_with_rabbitmqs_text() {
        let deltas = [
            MetaDelta::Access(AccessDelta::UserDeleted { name: "u".into() }),
            MetaDelta::Access(AccessDelta::VHostDeleted { name: "v".into() }),
        ];
        let texts: Vec<String> = revoked(&deltas).iter().map(Revoked::text).collect();
        assert_eq!(texts, ["user 'u' is deleted", "vhost 'v' is deleted"]);
    }
}
