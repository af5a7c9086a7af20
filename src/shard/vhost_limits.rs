//! Vhost limits (`max-connections`, `max-queues`), the node's (`--max-connections`,
//! `--max-queues`), and what follows the deletion of a user or
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
}

/// The metadata shard's count of open connections, per vhost and in all.
#[derive(Default)]
pub struct VHostConnections {
    admitted: RefCell<FastMap<ConnectionId, ShortStr>>,
    counts: RefCell<FastMap<ShortStr, u32>>,
}

impl VHostConnections {
    /// Takes a slot in `vhost` for `connection` unless the node's `node_limit` or the vhost's
    /// `max-connections` is reached (checked in that order, as RabbitMQ does); Err is the
    /// limit.
    fn admit(
        &self,
        registry: &Registry,
        connection: ConnectionId,
        vhost: ShortStr,
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
        counts.insert(vhost.clone(), count + 1);
        self.admitted.borrow_mut().insert(connection, vhost);
        Ok(())
    }

    /// Gives back the connection's slot, if it has one.
    fn release(&self, connection: ConnectionId) {
        let Some(vhost) = self.admitted.borrow_mut().remove(&connection) else {
            return;
        };
        let mut counts = self.counts.borrow_mut();
        if let Some(count) = counts.get_mut(&vhost) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&vhost);
            }
        }
    }

    /// The connection `from` lives on as `to` (it moved to another shard): same vhost, same
    /// count.
    pub fn rename(&self, from: ConnectionId, to: ConnectionId) {
        let mut admitted = self.admitted.borrow_mut();
        if let Some(vhost) = admitted.remove(&from) {
            admitted.insert(to, vhost);
        }
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
        VHostConnectionChange::Admit { reply_to, vhost } => {
            let node_limit = shard.config.connection_max;
            let admitted =
                connections.admit(&shard.registry.borrow(), connection, vhost, node_limit);
            shard.reply(reply_to, Reply::VHostAdmitted(admitted));
        }
        VHostConnectionChange::Release => connections.release(connection),
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

/// Asks the metadata shard for a slot in `vhost`. The slot exists before the question is
/// sent, so a connection that gives up waiting still gives it back; Err is the limit
/// reached.
pub async fn admit(
    shard: &Rc<Shard>,
    connection: ConnectionId,
    vhost: &ShortStr,
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
    use crate::vhost::access::{VHostLimits, VHostMetadata};

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
        assert_eq!(counts.admit(&registry, id(1), v.clone(), None), Ok(()));
        assert_eq!(counts.admit(&registry, id(2), v.clone(), None), Ok(()));
        assert_eq!(
            counts.admit(&registry, id(3), v.clone(), None),
            Err(ConnectionLimit::VHost(2))
        );
        // A refused connection's release changes nothing; a release counts once.
        counts.release(id(3));
        assert_eq!(counts.count(&v), 2);
        counts.release(id(1));
        counts.release(id(1));
        assert_eq!(counts.count(&v), 1);
        assert_eq!(counts.admit(&registry, id(4), v.clone(), None), Ok(()));
    }

    #[test]
    fn zero_admits_nobody_and_minus_one_everybody() {
        let v = ShortStr::from_static("v");
        let counts = VHostConnections::default();
        let id = ConnectionId::new(ShardId(0), 1);
        assert_eq!(
            counts.admit(&registry_with_limit(Some(0)), id, v.clone(), None),
            Err(ConnectionLimit::VHost(0))
        );
        assert_eq!(
            counts.admit(&registry_with_limit(Some(-1)), id, v.clone(), None),
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
            counts.admit(&registry, id(1), other.clone(), Some(1)),
            Ok(())
        );
        assert_eq!(
            counts.admit(&registry, id(2), ShortStr::from_static("v"), Some(1)),
            Err(ConnectionLimit::Node(1))
        );
        counts.release(id(1));
        assert_eq!(counts.admit(&registry, id(3), other, Some(1)), Ok(()));
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
