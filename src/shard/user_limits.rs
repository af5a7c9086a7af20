//! Per-user limits (`max-connections`, `max-channels`), with RabbitMQ's codes and texts
//! (docs/rabbitmq-compatibility.md §18). As in RabbitMQ both count over all of the user's
//! connections, on every shard; 0 admits nothing, a negative value or none everything, and a
//! lowered limit closes nothing already open.
//!
//! The counts live on the metadata shard next to the vhost counts (`vhost_limits`): a
//! connection's user is checked when it asks for its slot at connection.open. Channels cost
//! nothing while their user has no `max-channels`. While it has one (in the shard's copy of
//! the limits), channel.open waits for the metadata shard's yes, which two shards opening the
//! last free channel at once cannot both get, and every open and close is reported there
//! (an absolute count, without waiting). When a user gets a `max-channels`, each shard, as it
//! applies the change, reports the channels its connections of that user have open: the
//! count is right from then on.

use std::rc::Rc;

use crate::exception::Exception;
use crate::fast_map::FastMap;
use crate::ids::ShardId;
use crate::protocol::{HardError, ShortStr};
use crate::shard::message::{Reply, ShardMessage, VHostConnectionChange};
use crate::shard::Shard;
use crate::vhost::access::UserLimits;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::delta::MetaDelta;

/// The metadata shard's open connections and channels per user, on every shard.
#[derive(Default)]
pub struct UserCounts {
    connections: FastMap<ShortStr, u32>,
    channels: FastMap<ShortStr, u32>,
}

impl UserCounts {
    /// Err is the user's `max-connections`, reached.
    pub fn check_connection(&self, user: &ShortStr, limits: UserLimits) -> Result<(), i64> {
        match limits.connection_limit() {
            Some(limit) if i64::from(count(&self.connections, user)) >= limit => Err(limit),
            _ => Ok(()),
        }
    }

    pub fn connection_opened(&mut self, user: &ShortStr) {
        add(&mut self.connections, user, 1);
    }

    /// The connection ended with `channels` still open.
    pub fn connection_closed(&mut self, user: &ShortStr, channels: u32) {
        subtract(&mut self.connections, user, 1);
        subtract(&mut self.channels, user, channels);
    }

    /// Takes one more channel for `user` unless its `max-channels` is reached (Err).
    pub fn open_channel(&mut self, user: &ShortStr, limits: UserLimits) -> Result<(), i64> {
        if let Some(limit) = limits.channel_limit() {
            if i64::from(count(&self.channels, user)) >= limit {
                return Err(limit);
            }
        }
        add(&mut self.channels, user, 1);
        Ok(())
    }

    /// One of the user's connections went from `before` to `after` open channels.
    pub fn channels_changed(&mut self, user: &ShortStr, before: u32, after: u32) {
        if after >= before {
            add(&mut self.channels, user, after - before);
        } else {
            subtract(&mut self.channels, user, before - after);
        }
    }

    /// Open connections of `user`, on every shard.
    pub fn connections(&self, user: &ShortStr) -> u32 {
        count(&self.connections, user)
    }

    /// Open channels of `user`, on every shard.
    pub fn channels(&self, user: &ShortStr) -> u32 {
        count(&self.channels, user)
    }
}

fn count(counts: &FastMap<ShortStr, u32>, user: &ShortStr) -> u32 {
    counts.get(user).copied().unwrap_or(0)
}

fn add(counts: &mut FastMap<ShortStr, u32>, user: &ShortStr, n: u32) {
    if n == 0 {
        return;
    }
    let count = counts.entry(user.clone()).or_insert(0);
    *count = count.saturating_add(n);
}

fn subtract(counts: &mut FastMap<ShortStr, u32>, user: &ShortStr, n: u32) {
    if let Some(count) = counts.get_mut(user) {
        *count = count.saturating_sub(n);
        if *count == 0 {
            counts.remove(user);
        }
    }
}

/// RabbitMQ's refusal of a connection over its user's `max-connections` (530, at
/// connection.open, after the vhost's limit and before the vhost access check).
pub fn connection_refusal_text(user: &ShortStr, limit: i64) -> String {
    format!("connection refused for user '{user}': user connection limit ({limit}) is reached")
}

/// RabbitMQ's refusal of a channel.open over the user's `max-channels`: a connection error,
/// 530, worded as RabbitMQ 3.10 words it (3.13 puts its node's name where the user's belongs,
/// a slip later versions fixed).
pub fn channel_refusal(user: &ShortStr, limit: i64) -> Exception {
    Exception::connection(
        HardError::NotAllowed,
        format!(
            "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({limit})"
        ),
    )
}

/// True while `user` has a `max-channels` in this shard's copy of the limits. No allocation:
/// it runs at every channel.open and channel.close.
pub fn channel_limited(shard: &Shard, user: &ShortStr) -> bool {
    let registry = shard.registry.borrow();
    let limits = &registry.access().user_limits;
    if limits.is_empty() {
        return false;
    }
    std::str::from_utf8(user.as_bytes())
        .ok()
        .and_then(|user| limits.get(user))
        .is_some_and(|limits| limits.channel_limit().is_some())
}

/// Before a channel.open that passed the connection's own checks: while `user` has a
/// `max-channels`, asks the metadata shard for a place; Err is the refusal. Without one,
/// nothing to wait for and nothing to count.
pub async fn admit_channel(
    shard: &Rc<Shard>,
    connection: crate::ids::ConnectionId,
    user: &ShortStr,
) -> Result<(), Exception> {
    if !channel_limited(shard, user) {
        return Ok(());
    }
    let reply = shard
        .request(ShardId::METADATA, |reply_to| {
            ShardMessage::VHostConnection {
                connection,
                change: VHostConnectionChange::OpenChannel { reply_to },
            }
        })
        .await;
    match reply {
        Reply::ChannelAdmitted(Err(limit)) => Err(channel_refusal(user, limit)),
        _ => Ok(()),
    }
}

/// After a channel.open or channel.close of a connection of `user`: while the user has a
/// `max-channels`, tells the metadata shard how many channels the connection has open now.
pub fn channels_changed(
    shard: &Shard,
    connection: crate::ids::ConnectionId,
    user: &ShortStr,
    open: usize,
) {
    if channel_limited(shard, user) {
        report_channels(shard, connection, open);
    }
}

/// As this shard applies access changes: for each user that now has a `max-channels`, the
/// channels its connections here have open, so that the metadata shard counts them (they
/// were not reported while the user had no limit).
pub fn limits_changed(shard: &Shard, deltas: &[MetaDelta]) {
    for delta in deltas {
        let MetaDelta::Access(AccessDelta::UserLimitsSet { user, limits }) = delta else {
            continue;
        };
        if limits.channel_limit().is_none() {
            continue;
        }
        for (connection, endpoint) in shard.connections.all_with_ids() {
            if let Some(open) = endpoint.channels_of(user) {
                report_channels(shard, connection, open);
            }
        }
    }
}

/// Tells the metadata shard how many channels the connection has open now.
fn report_channels(shard: &Shard, connection: crate::ids::ConnectionId, open: usize) {
    shard.send(
        ShardId::METADATA,
        ShardMessage::VHostConnection {
            connection,
            change: VHostConnectionChange::Channels {
                open: u32::try_from(open).unwrap_or(u32::MAX),
            },
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: Option<i64>, max_channels: Option<i64>) -> UserLimits {
        UserLimits {
            max_connections,
            max_channels,
        }
    }

    #[test]
    fn connections_are_admitted_below_the_limit_only() {
        let mut counts = UserCounts::default();
        let u = ShortStr::from_static("u");
        let two = limits(Some(2), None);
        for _ in 0..2 {
            assert_eq!(counts.check_connection(&u, two), Ok(()));
            counts.connection_opened(&u);
        }
        assert_eq!(counts.check_connection(&u, two), Err(2));
        assert_eq!(counts.check_connection(&u, limits(Some(-1), None)), Ok(()));
        assert_eq!(counts.check_connection(&u, limits(None, None)), Ok(()));
        counts.connection_closed(&u, 0);
        assert_eq!(counts.check_connection(&u, two), Ok(()));
        let other = ShortStr::from_static("other");
        assert_eq!(
            counts.check_connection(&other, limits(Some(0), None)),
            Err(0)
        );
    }

    #[test]
    fn channels_count_over_every_connection_and_go_with_their_connection() {
        let mut counts = UserCounts::default();
        let u = ShortStr::from_static("u");
        let three = limits(None, Some(3));
        // Two connections' channels, reported as a limit is set.
        counts.channels_changed(&u, 0, 1);
        counts.channels_changed(&u, 0, 1);
        counts.channels_changed(&u, 1, 2);
        assert_eq!(counts.channels(&u), 3);
        assert_eq!(counts.open_channel(&u, three), Err(3));
        // A connection with two channels ends: both places come back.
        counts.connection_closed(&u, 2);
        assert_eq!(counts.channels(&u), 1);
        assert_eq!(counts.open_channel(&u, three), Ok(()));
        assert_eq!(counts.channels(&u), 2);
        counts.channels_changed(&u, 2, 1);
        assert_eq!(counts.channels(&u), 1);
        assert_eq!(counts.open_channel(&u, limits(None, Some(0))), Err(0));
        assert_eq!(counts.open_channel(&u, limits(None, Some(-5))), Ok(()));
    }

    #[test]
    fn refusals_use_rabbitmqs_texts() {
        let u = ShortStr::from_static("u");
        assert_eq!(
            connection_refusal_text(&u, 1),
            "connection refused for user 'u': user connection limit (1) is reached"
        );
        assert_eq!(
            channel_refusal(&u, 2).explanation,
            "number of channels opened for user 'u' has reached the maximum allowed user limit of (2)"
        );
    }
}
