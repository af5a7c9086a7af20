//! A connection's statistics as the management API sees them (`shard::stats`): copied from
//! the counters the reader, the writer and each channel keep, when the shard is asked.

use crate::connection::channel::{Channel, ChannelState};
use crate::connection::ConnectionShared;
use crate::shard::stats::{
    ChannelCounters, ChannelLifecycle, ChannelStats, ConnectionLifecycle, ConnectionStats,
};
use crate::shard::Shard;

/// A copy of `connection`'s statistics and its channels'.
pub fn collect(connection: &ConnectionShared) -> ConnectionStats {
    let state = connection.state.borrow();
    let lifecycle = if connection.is_closing() {
        ConnectionLifecycle::Closing
    } else if connection.is_blocked() {
        ConnectionLifecycle::Blocked
    } else {
        ConnectionLifecycle::Running
    };
    let mut channels: Vec<ChannelStats> = state.channels.values().map(channel_stats).collect();
    channels.sort_by_key(|channel| channel.number);
    ConnectionStats {
        id: connection.id,
        peer: connection.peer,
        local: connection.local,
        user: state.user.clone(),
        vhost: state.vhost.clone(),
        state: lifecycle,
        connected_at_ms: connection.connected_at_ms,
        client_properties: state.client_properties.clone(),
        channel_max: state.channel_max,
        frame_max: state.frame_max,
        heartbeat_secs: state.heartbeat_interval.as_secs(),
        auth_mechanism: state.auth_mechanism.clone(),
        tls: connection.tls,
        recv_oct: connection.received.octets(),
        recv_cnt: connection.received.operations(),
        send_oct: connection.output.sent.octets(),
        send_cnt: connection.output.sent.operations(),
        send_pend: connection.output.pending_bytes() as u64,
        channels,
    }
}

/// What `channel` counted, its confirms included.
fn counters(channel: &Channel) -> ChannelCounters {
    let mut counters = channel.counters;
    counters.confirm = channel
        .confirm
        .as_ref()
        .map_or(0, |tracker| tracker.confirmed());
    counters
}

/// `channel` left its connection's table: its counts go into the shard's closed-channel
/// totals. Called exactly where a channel is removed, so once per channel.
pub fn channel_closed(shard: &Shard, channel: &Channel) {
    shard
        .connections
        .channel_closed(&counters(channel), channel.confirm.is_some());
}

fn channel_stats(channel: &Channel) -> ChannelStats {
    let counters = counters(channel);
    ChannelStats {
        number: channel.id.0,
        state: match channel.state {
            ChannelState::Open => ChannelLifecycle::Running,
            ChannelState::Closing => ChannelLifecycle::Closing,
        },
        counters,
        prefetch_count: channel.prefetch_count,
        global_prefetch_count: channel.global_prefetch_count,
        confirm: channel.confirm.is_some(),
        transactional: channel.transaction.is_some(),
        unacked_count: channel.unacked.len() as u64,
        unconfirmed_count: channel
            .confirm
            .as_ref()
            .map_or(0, |tracker| tracker.outstanding() as u64),
        consumer_count: channel.consumers.len() as u64,
    }
}
