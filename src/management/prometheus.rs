//! RabbitMQ's Prometheus metrics (the `rabbitmq_prometheus` plugin of 3.13, docs/metrics.md)
//! rendered from a statistics `Snapshot`: the same family names, types, HELP texts and
//! labels, so RabbitMQ's Grafana dashboards and alerts read Hare unchanged.
//!
//! Families come in RabbitMQ's groups (its ETS table names, which `/metrics/detailed` takes
//! as `family=`). `/metrics` sums every group into one unlabelled sample per family;
//! `/metrics/per-object` has one sample per queue, channel or connection; `/metrics/detailed`
//! renders only the groups asked for, per object, with the `rabbitmq_detailed_` prefix.
//!
//! Rendering happens on the scrape, from a snapshot the shards answered: nothing here touches
//! the message path.

use crate::management::dto;
use crate::management::exposition::{Family, Kind, Writer};
use crate::management::overview::{ERLANG_VERSION, RABBITMQ_VERSION};
use crate::management::stats::Snapshot;
use crate::shard::stats::{
    ChannelCounters, ChannelStats, ClosedChannels, ConnectionStats, QueueChurn,
};

/// Families of `/metrics` and `/metrics/per-object`.
pub const PREFIX: &str = "rabbitmq_";
/// Families of `/metrics/detailed`.
pub const DETAILED_PREFIX: &str = "rabbitmq_detailed_";

/// The `protocol` label of every `rabbitmq_global_*` family.
const PROTOCOL: &str = "amqp091";
/// Hare's queues are classic queues as far as `queue_type` labels go.
const QUEUE_TYPE: &str = "rabbit_classic_queue";

/// Which endpoint is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/metrics`: one sample per family.
    Aggregated,
    /// `/metrics/per-object`: one sample per object.
    PerObject,
    /// `/metrics/detailed`: the groups named by `family=`, per object; queue groups only of
    /// the `vhost=` given (all if none).
    Detailed {
        families: Vec<String>,
        vhosts: Vec<String>,
    },
}

impl Scope {
    fn per_object(&self) -> bool {
        !matches!(self, Scope::Aggregated)
    }

    fn includes(&self, group: &str) -> bool {
        match self {
            Scope::Detailed { families, .. } => families.iter().any(|family| family == group),
            _ => true,
        }
    }

    fn shows_vhost(&self, vhost: &str) -> bool {
        match self {
            Scope::Detailed { vhosts, .. } if !vhosts.is_empty() => {
                vhosts.iter().any(|wanted| wanted == vhost)
            }
            _ => true,
        }
    }
}

/// Facts about the node that are not in the shards' statistics (`nodes` reads them).
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// `rabbitmq_node` and `rabbitmq_cluster` of `rabbitmq_identity_info`.
    pub name: String,
    pub resident_bytes: u64,
    pub memory_limit_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub open_sockets: u64,
    pub disk_free_bytes: u64,
    pub disk_free_limit_bytes: u64,
    /// Free disk space is under the limit, or a shard's log failed.
    pub disk_alarm: bool,
    /// Resident memory is over the high watermark.
    pub memory_alarm: bool,
}

const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { name, kind, help }
}

const fn gauge(name: &'static str, help: &'static str) -> Family {
    family(name, Kind::Gauge, help)
}

const fn counter(name: &'static str, help: &'static str) -> Family {
    family(name, Kind::Counter, help)
}

/// Renders `scope` of `snapshot`.
pub fn render(snapshot: &Snapshot, node: &Node, scope: &Scope) -> String {
    let prefix = if matches!(scope, Scope::Detailed { .. }) {
        DETAILED_PREFIX
    } else {
        PREFIX
    };
    let mut out = Writer::new(prefix);
    if *scope == Scope::Aggregated {
        alarms(&mut out, node);
    }
    let view = View::of(snapshot);
    let groups: [(&str, Group); 10] = [
        ("connection_churn_metrics", connection_churn),
        ("node_coarse_metrics", node_coarse),
        ("node_metrics", node_limits),
        ("queue_coarse_metrics", queue_coarse),
        ("queue_metrics", queue_details),
        ("channel_metrics", channel_gauges),
        ("channel_exchange_metrics", channel_exchange),
        ("channel_queue_metrics", channel_queue),
        ("connection_coarse_metrics", connection_coarse),
        ("connection_metrics", connection_details),
    ];
    for (name, group) in groups {
        if scope.includes(name) {
            group(&mut out, &view, node, scope);
        }
    }
    if scope.includes("channel_queue_exchange_metrics") {
        queue_published(&mut out, &view, scope);
    }
    if scope.includes("queue_consumer_count") && !scope.includes("queue_metrics") {
        queue_consumer_count(&mut out, &view, scope);
    }
    out.set_prefix(PREFIX);
    if !matches!(scope, Scope::Detailed { .. }) {
        totals(&mut out, &view);
    }
    identity(&mut out, node);
    if !matches!(scope, Scope::Detailed { .. }) {
        global(&mut out, &view);
    }
    out.finish()
}

type Group = fn(&mut Writer, &View, &Node, &Scope);

/// The snapshot with the names labels need, worked out once per scrape.
struct View<'a> {
    snapshot: &'a Snapshot,
    /// Every open channel with its label (`"<connection name> (<number>)"`).
    channels: Vec<(String, &'a ChannelStats)>,
    /// Every open connection with its label (`"<peer> -> <local>"`).
    connections: Vec<(String, &'a ConnectionStats)>,
    closed: ClosedChannels,
}

impl<'a> View<'a> {
    fn of(snapshot: &'a Snapshot) -> View<'a> {
        let mut connections: Vec<(String, &ConnectionStats)> = snapshot
            .connections()
            .map(|c| (dto::connection_name(c.peer, c.local), c))
            .collect();
        connections.sort_by(|a, b| a.0.cmp(&b.0));
        let channels = connections
            .iter()
            .flat_map(|(name, connection)| {
                connection
                    .channels
                    .iter()
                    .map(move |channel| (dto::channel_name(name, channel.number), channel))
            })
            .collect();
        let mut closed = ClosedChannels::default();
        for shard in &snapshot.shards {
            closed.count += shard.closed_channels.count;
            closed.counters.add(&shard.closed_channels.counters);
            closed.confirm_publish += shard.closed_channels.confirm_publish;
        }
        View {
            snapshot,
            channels,
            connections,
            closed,
        }
    }

    /// Open channels' counters summed, and those of the channels closed since start.
    fn all_channel_counters(&self) -> ChannelCounters {
        let mut total = self.closed.counters;
        for (_, channel) in &self.channels {
            total.add(&channel.counters);
        }
        total
    }
}

/// Rows of a table: each row's labels, then one value per family.
type Rows<'a, const N: usize> = Vec<(Vec<(&'static str, &'a str)>, [u64; N])>;

/// Writes `families`, each with one sample per row (per object) or the rows' sum (aggregated).
/// A row's labels, then one value per family.
fn table<const N: usize>(
    out: &mut Writer,
    scope: &Scope,
    families: &[Family; N],
    rows: &Rows<'_, N>,
) {
    for (index, family) in families.iter().enumerate() {
        out.family(family);
        if scope.per_object() {
            for (labels, values) in rows {
                out.sample(labels, values[index]);
            }
        } else {
            let sum: u64 = rows.iter().map(|(_, values)| values[index]).sum();
            out.sample(&[], sum);
        }
    }
}

fn alarms(out: &mut Writer, node: &Node) {
    const FAMILIES: [Family; 3] = [
        family(
            "alarms_file_descriptor_limit",
            Kind::Untyped,
            "is 1 if file descriptor limit alarm is in effect",
        ),
        family(
            "alarms_free_disk_space_watermark",
            Kind::Untyped,
            "is 1 if free disk space watermark alarm is in effect",
        ),
        family(
            "alarms_memory_used_watermark",
            Kind::Untyped,
            "is 1 if VM memory watermark alarm is in effect",
        ),
    ];
    let values = [
        u64::from(crate::shard::descriptors::alarm()),
        u64::from(node.disk_alarm),
        u64::from(node.memory_alarm),
    ];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &[], value);
    }
}

fn connection_churn(out: &mut Writer, view: &View, _: &Node, _: &Scope) {
    const FAMILIES: [Family; 7] = [
        counter(
            "connections_opened_total",
            "Total number of connections opened",
        ),
        counter(
            "connections_closed_total",
            "Total number of connections closed or terminated",
        ),
        counter("channels_opened_total", "Total number of channels opened"),
        counter("channels_closed_total", "Total number of channels closed"),
        counter("queues_declared_total", "Total number of queues declared"),
        counter("queues_created_total", "Total number of queues created"),
        counter("queues_deleted_total", "Total number of queues deleted"),
    ];
    let shards = &view.snapshot.shards;
    let opened: u64 = shards.iter().map(|s| s.connections_created).sum();
    let closed: u64 = shards.iter().map(|s| s.connections_closed).sum();
    let channels_closed = view.closed.count;
    let channels_opened = channels_closed + view.channels.len() as u64;
    let churn =
        |read: fn(&QueueChurn) -> u64| -> u64 { shards.iter().map(|s| read(&s.queue_churn)).sum() };
    let values = [
        opened,
        closed,
        channels_opened,
        channels_closed,
        churn(|c| c.declared),
        churn(|c| c.created),
        churn(|c| c.deleted),
    ];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &[], value);
    }
}

fn node_coarse(out: &mut Writer, _: &View, node: &Node, _: &Scope) {
    const FAMILIES: [Family; 4] = [
        gauge("process_open_fds", "Open file descriptors"),
        gauge("process_open_tcp_sockets", "Open TCP sockets"),
        gauge("process_resident_memory_bytes", "Memory used in bytes"),
        gauge(
            "disk_space_available_bytes",
            "Disk space available in bytes",
        ),
    ];
    let values = [
        node.open_fds,
        node.open_sockets,
        node.resident_bytes,
        node.disk_free_bytes,
    ];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &[], value);
    }
}

fn node_limits(out: &mut Writer, _: &View, node: &Node, _: &Scope) {
    const FAMILIES: [Family; 4] = [
        gauge("process_max_fds", "Open file descriptors limit"),
        gauge("process_max_tcp_sockets", "Open TCP sockets limit"),
        gauge(
            "resident_memory_limit_bytes",
            "Memory high watermark in bytes",
        ),
        gauge(
            "disk_space_available_limit_bytes",
            "Free disk space low watermark in bytes",
        ),
    ];
    // Every descriptor may be a socket: the socket limit is the descriptor limit.
    let values = [
        node.max_fds,
        node.max_fds,
        node.memory_limit_bytes,
        node.disk_free_limit_bytes,
    ];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &[], value);
    }
}

/// The queues a scope shows, with their `vhost` and `queue` label values, sorted.
fn queues<'a>(
    view: &'a View,
    scope: &Scope,
) -> Vec<(String, String, &'a crate::shard::stats::QueueStats)> {
    let mut queues: Vec<_> = view
        .snapshot
        .queues()
        .map(|q| (q.vhost.to_string_lossy(), q.name.to_string_lossy(), q))
        .filter(|(vhost, _, _)| scope.shows_vhost(vhost))
        .collect();
    queues.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    queues
}

fn queue_coarse(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 3] = [
        gauge(
            "queue_messages_ready",
            "Messages ready to be delivered to consumers",
        ),
        gauge(
            "queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
        ),
        gauge(
            "queue_messages",
            "Sum of ready and unacknowledged messages - total queue depth",
        ),
    ];
    let queues = queues(view, scope);
    let rows: Vec<_> = queues
        .iter()
        .map(|(vhost, name, q)| {
            let labels = vec![("vhost", vhost.as_str()), ("queue", name.as_str())];
            let (ready, unacked) = (q.ready_count, q.unacked_count);
            (labels, [ready, unacked, ready + unacked])
        })
        .collect();
    table(out, scope, &FAMILIES, &rows);
}

fn queue_details(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 7] = [
        gauge("queue_consumers", "Consumers on a queue"),
        gauge(
            "queue_process_memory_bytes",
            "Memory in bytes used by the Erlang queue process",
        ),
        gauge(
            "queue_messages_ready_ram",
            "Ready messages stored in memory",
        ),
        gauge(
            "queue_messages_bytes",
            "Size in bytes of ready and unacknowledged messages",
        ),
        gauge(
            "queue_messages_ready_bytes",
            "Size in bytes of ready messages",
        ),
        gauge(
            "queue_messages_unacked_bytes",
            "Size in bytes of all unacknowledged messages",
        ),
        gauge("queue_messages_paged_out", "Messages paged out to disk"),
    ];
    let queues = queues(view, scope);
    let rows: Vec<_> = queues
        .iter()
        .map(|(vhost, name, q)| {
            let labels = vec![("vhost", vhost.as_str()), ("queue", name.as_str())];
            let values = [
                q.consumer_count,
                q.memory_bytes,
                q.resident_count,
                q.ready_bytes + q.unacked_bytes,
                q.ready_bytes,
                q.unacked_bytes,
                q.ready_count.saturating_sub(q.resident_count),
            ];
            (labels, values)
        })
        .collect();
    table(out, scope, &FAMILIES, &rows);
}

/// `queue_consumers` alone (the detailed endpoint's cheaper group).
fn queue_consumer_count(out: &mut Writer, view: &View, scope: &Scope) {
    const FAMILIES: [Family; 1] = [gauge("queue_consumers", "Consumers on a queue")];
    let queues = queues(view, scope);
    let rows: Vec<_> = queues
        .iter()
        .map(|(vhost, name, q)| {
            let labels = vec![("vhost", vhost.as_str()), ("queue", name.as_str())];
            (labels, [q.consumer_count])
        })
        .collect();
    table(out, scope, &FAMILIES, &rows);
}

/// One row per open channel, labelled `channel`.
fn channel_rows<'a, const N: usize>(
    view: &'a View,
    values: impl Fn(&ChannelStats) -> [u64; N],
) -> Rows<'a, N> {
    view.channels
        .iter()
        .map(|(name, channel)| (vec![("channel", name.as_str())], values(channel)))
        .collect()
}

fn channel_gauges(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 5] = [
        gauge("channel_consumers", "Consumers on a channel"),
        gauge(
            "channel_messages_unacked",
            "Delivered but not yet acknowledged messages",
        ),
        gauge(
            "channel_messages_unconfirmed",
            "Published but not yet confirmed messages",
        ),
        gauge(
            "consumer_prefetch",
            "Limit of unacknowledged messages for each consumer",
        ),
        gauge(
            "channel_prefetch",
            "Total limit of unacknowledged messages for all consumers on a channel",
        ),
    ];
    let rows = channel_rows(view, |c| {
        [
            c.consumer_count,
            c.unacked_count,
            c.unconfirmed_count,
            u64::from(c.prefetch_count),
            u64::from(c.global_prefetch_count),
        ]
    });
    table(out, scope, &FAMILIES, &rows);
}

fn channel_exchange(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 4] = [
        counter(
            "channel_messages_published_total",
            "Total number of messages published into an exchange on a channel",
        ),
        counter(
            "channel_messages_confirmed_total",
            "Total number of messages published into an exchange and confirmed on the channel",
        ),
        counter(
            "channel_messages_unroutable_returned_total",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        ),
        counter(
            "channel_messages_unroutable_dropped_total",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        ),
    ];
    let rows = channel_rows(view, |c| {
        let n = &c.counters;
        [n.publish, n.confirm, n.return_unroutable, n.drop_unroutable]
    });
    table(out, scope, &FAMILIES, &rows);
}

fn channel_queue(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 7] = [
        counter(
            "channel_get_ack_total",
            "Total number of messages fetched with basic.get in manual acknowledgement mode",
        ),
        counter(
            "channel_get_total",
            "Total number of messages fetched with basic.get in automatic acknowledgement mode",
        ),
        counter(
            "channel_messages_delivered_ack_total",
            "Total number of messages delivered to consumers in manual acknowledgement mode",
        ),
        counter(
            "channel_messages_delivered_total",
            "Total number of messages delivered to consumers in automatic acknowledgement mode",
        ),
        counter(
            "channel_messages_redelivered_total",
            "Total number of messages redelivered to consumers",
        ),
        counter(
            "channel_messages_acked_total",
            "Total number of messages acknowledged by consumers",
        ),
        counter(
            "channel_get_empty_total",
            "Total number of times basic.get operations fetched no message",
        ),
    ];
    let rows = channel_rows(view, |c| {
        let n = &c.counters;
        [
            n.get,
            n.get_no_ack,
            n.deliver,
            n.deliver_no_ack,
            n.redeliver,
            n.ack,
            n.get_empty,
        ]
    });
    table(out, scope, &FAMILIES, &rows);
}

/// One row per open connection. RabbitMQ labels connection samples `channel` (with the
/// connection process' id); so does Hare, with the connection's name.
fn connection_rows<'a, const N: usize>(
    view: &'a View,
    values: impl Fn(&ConnectionStats) -> [u64; N],
) -> Rows<'a, N> {
    view.connections
        .iter()
        .map(|(name, connection)| (vec![("channel", name.as_str())], values(connection)))
        .collect()
}

fn connection_coarse(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 2] = [
        counter(
            "connection_incoming_bytes_total",
            "Total number of bytes received on a connection",
        ),
        counter(
            "connection_outgoing_bytes_total",
            "Total number of bytes sent on a connection",
        ),
    ];
    let rows = connection_rows(view, |c| [c.recv_oct, c.send_oct]);
    table(out, scope, &FAMILIES, &rows);
}

fn connection_details(out: &mut Writer, view: &View, _: &Node, scope: &Scope) {
    const FAMILIES: [Family; 4] = [
        counter(
            "connection_incoming_packets_total",
            "Total number of packets received on a connection",
        ),
        counter(
            "connection_outgoing_packets_total",
            "Total number of packets sent on a connection",
        ),
        gauge(
            "connection_pending_packets",
            "Number of packets waiting to be sent on a connection",
        ),
        gauge("connection_channels", "Channels on a connection"),
    ];
    let rows = connection_rows(view, |c| {
        [c.recv_cnt, c.send_cnt, c.send_pend, c.channels.len() as u64]
    });
    table(out, scope, &FAMILIES, &rows);
}

/// Messages enqueued, per queue (RabbitMQ also splits them by channel and exchange).
fn queue_published(out: &mut Writer, view: &View, scope: &Scope) {
    const FAMILIES: [Family; 1] = [counter(
        "queue_messages_published_total",
        "Total number of messages published to queues",
    )];
    let queues = queues(view, scope);
    let rows: Vec<_> = queues
        .iter()
        .map(|(vhost, name, q)| {
            let labels = vec![("queue_vhost", vhost.as_str()), ("queue", name.as_str())];
            (labels, [q.counters.publish])
        })
        .collect();
    table(out, scope, &FAMILIES, &rows);
}

fn totals(out: &mut Writer, view: &View) {
    const FAMILIES: [Family; 5] = [
        gauge("connections", "Connections currently open"),
        gauge("channels", "Channels currently open"),
        gauge("consumers", "Consumers currently connected"),
        gauge("queues", "Queues available"),
        // Hare's own: RabbitMQ has no such family.
        counter(
            "messages_damaged_dropped_total",
            "Stored messages dropped from their queue because their record was damaged on disk",
        ),
    ];
    let values = [
        view.connections.len() as u64,
        view.channels.len() as u64,
        view.snapshot.consumers().count() as u64,
        view.snapshot.queues().count() as u64,
        view.snapshot.shards.iter().map(|s| s.damaged_dropped).sum(),
    ];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &[], value);
    }
}

fn identity(out: &mut Writer, node: &Node) {
    const BUILD: Family = family(
        "build_info",
        Kind::Untyped,
        "RabbitMQ & Erlang/OTP version info",
    );
    const IDENTITY: Family = family(
        "identity_info",
        Kind::Untyped,
        "RabbitMQ node & cluster identity info",
    );
    out.single(
        &BUILD,
        &[
            ("product_name", "Hare"),
            ("product_version", env!("CARGO_PKG_VERSION")),
            ("rabbitmq_version", RABBITMQ_VERSION),
            ("prometheus_plugin_version", RABBITMQ_VERSION),
            ("prometheus_client_version", ERLANG_VERSION),
            ("erlang_version", ERLANG_VERSION),
        ],
        1u64,
    );
    let permanent_id = format!("rabbitmq-cluster-id-{}", node.name);
    out.single(
        &IDENTITY,
        &[
            ("rabbitmq_node", &node.name),
            ("rabbitmq_cluster", &node.name),
            ("rabbitmq_cluster_permanent_id", &permanent_id),
        ],
        1u64,
    );
}

/// `rabbitmq_global_*`: node-wide counters that do not fall when channels close (open
/// channels' counts plus those of the channels closed since start).
fn global(out: &mut Writer, view: &View) {
    global_protocol(out, view);
    global_queue_type(out, view);
}

fn global_protocol(out: &mut Writer, view: &View) {
    const FAMILIES: [Family; 8] = [
        gauge("global_consumers", "Current number of consumers"),
        counter(
            "global_messages_confirmed_total",
            "Total number of messages confirmed to publishers",
        ),
        counter(
            "global_messages_received_confirm_total",
            "Total number of messages received from publishers expecting confirmations",
        ),
        counter(
            "global_messages_received_total",
            "Total number of messages received from publishers",
        ),
        counter(
            "global_messages_routed_total",
            "Total number of messages routed to queues or streams",
        ),
        counter(
            "global_messages_unroutable_dropped_total",
            "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        ),
        counter(
            "global_messages_unroutable_returned_total",
            "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        ),
        gauge("global_publishers", "Current number of publishers"),
    ];
    let all = view.all_channel_counters();
    let mut received_confirm = view.closed.confirm_publish;
    for (_, channel) in view.channels.iter().filter(|(_, c)| c.confirm) {
        received_confirm += channel.counters.publish;
    }
    let routed: u64 = view
        .snapshot
        .exchange_counters()
        .values()
        .map(|counters| counters.publish_out)
        .sum();
    let publishers = view
        .channels
        .iter()
        .filter(|(_, c)| c.counters.publish > 0)
        .count() as u64;
    let values = [
        view.snapshot.consumers().count() as u64,
        all.confirm,
        received_confirm,
        all.publish,
        routed,
        all.drop_unroutable,
        all.return_unroutable,
        publishers,
    ];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &[("protocol", PROTOCOL)], value);
    }
}

fn global_queue_type(out: &mut Writer, view: &View) {
    const FAMILIES: [Family; 8] = [
        counter(
            "global_messages_acknowledged_total",
            "Total number of messages acknowledged by consumers",
        ),
        counter(
            "global_messages_delivered_consume_auto_ack_total",
            "Total number of messages delivered to consumers using basic.consume with automatic acknowledgment",
        ),
        counter(
            "global_messages_delivered_consume_manual_ack_total",
            "Total number of messages delivered to consumers using basic.consume with manual acknowledgment",
        ),
        counter(
            "global_messages_delivered_get_auto_ack_total",
            "Total number of messages delivered to consumers using basic.get with automatic acknowledgment",
        ),
        counter(
            "global_messages_delivered_get_manual_ack_total",
            "Total number of messages delivered to consumers using basic.get with manual acknowledgment",
        ),
        counter(
            "global_messages_delivered_total",
            "Total number of messages delivered to consumers",
        ),
        counter(
            "global_messages_get_empty_total",
            "Total number of times basic.get operations fetched no message",
        ),
        counter(
            "global_messages_redelivered_total",
            "Total number of messages redelivered to consumers",
        ),
    ];
    let all = view.all_channel_counters();
    let delivered = all.deliver + all.deliver_no_ack + all.get + all.get_no_ack;
    let values = [
        all.ack,
        all.deliver_no_ack,
        all.deliver,
        all.get_no_ack,
        all.get,
        delivered,
        all.get_empty,
        all.redeliver,
    ];
    let labels = [("protocol", PROTOCOL), ("queue_type", QUEUE_TYPE)];
    for (family, value) in FAMILIES.iter().zip(values) {
        out.single(family, &labels, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, QueueId, ShardId};
    use crate::protocol::{FieldTable, ShortStr};
    use crate::queue::counters::QueueCounters;
    use crate::shard::stats::{
        ChannelLifecycle, ConnectionLifecycle, ConsumerStats, QueueStats, ShardStats,
    };

    fn short(text: &str) -> ShortStr {
        ShortStr::from_str_truncated(text)
    }

    fn queue(name: &str, ready: u64, unacked: u64) -> QueueStats {
        QueueStats {
            id: QueueId(7),
            vhost: short("/"),
            name: short(name),
            counters: QueueCounters {
                publish: 5,
                ..QueueCounters::default()
            },
            ready_count: ready,
            unacked_count: unacked,
            ready_bytes: 10 * ready,
            unacked_bytes: 10 * unacked,
            resident_count: ready,
            consumer_count: 1,
            memory_bytes: 100,
            last_used_ms: 0,
        }
    }

    fn channel(number: u16, publish: u64, confirm: bool) -> ChannelStats {
        ChannelStats {
            number,
            state: ChannelLifecycle::Running,
            counters: ChannelCounters {
                publish,
                confirm: if confirm { publish } else { 0 },
                deliver: 2,
                deliver_no_ack: 1,
                get: 1,
                ack: 2,
                get_empty: 3,
                ..ChannelCounters::default()
            },
            prefetch_count: 10,
            global_prefetch_count: 0,
            confirm,
            transactional: false,
            unacked_count: 1,
            unconfirmed_count: 0,
            consumer_count: 1,
        }
    }

    fn connection(channels: Vec<ChannelStats>) -> ConnectionStats {
        let address = |text: &str| text.parse().expect("a socket address");
        ConnectionStats {
            id: ConnectionId::new(ShardId(0), 1),
            peer: address("127.0.0.1:40000"),
            local: address("127.0.0.1:5672"),
            user: short("guest"),
            vhost: short("/"),
            state: ConnectionLifecycle::Running,
            connected_at_ms: 0,
            client_properties: FieldTable::new(),
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat_secs: 60,
            auth_mechanism: short("PLAIN"),
            tls: None,
            recv_oct: 1000,
            recv_cnt: 10,
            send_oct: 2000,
            send_cnt: 20,
            send_pend: 0,
            channels,
        }
    }

    fn consumer() -> ConsumerStats {
        ConsumerStats {
            queue: QueueId(7),
            queue_name: short("q1"),
            vhost: short("/"),
            connection: ConnectionId::new(ShardId(0), 1),
            channel: 1,
            tag: short("ctag"),
            ack_required: true,
            exclusive: false,
            prefetch_count: 10,
            active: true,
            arguments: FieldTable::new(),
            consumer_timeout_ms: None,
        }
    }

    /// Two shards: queues on both, a connection with two channels (one in confirm mode) on
    /// the first, and three channels closed on the second.
    fn snapshot() -> Snapshot {
        let mut closed = ClosedChannels::default();
        closed.add(&channel(9, 100, true).counters, true);
        closed.add(&channel(9, 50, false).counters, false);
        closed.add(&ChannelCounters::default(), false);
        let first = ShardStats {
            shard: ShardId(0),
            queues: vec![queue("q1", 3, 1)],
            exchanges: Vec::new(),
            connections: vec![connection(vec![channel(1, 4, true), channel(2, 6, false)])],
            consumers: vec![consumer()],
            connections_created: 3,
            connections_closed: 2,
            closed_channels: ClosedChannels::default(),
            queue_churn: QueueChurn {
                declared: 5,
                created: 2,
                deleted: 1,
            },
            damaged_dropped: 2,
        };
        let second = ShardStats {
            shard: ShardId(1),
            queues: vec![queue("a \"quoted\\\" name\n", 2, 0)],
            exchanges: Vec::new(),
            connections: Vec::new(),
            consumers: Vec::new(),
            connections_created: 4,
            connections_closed: 4,
            closed_channels: closed,
            queue_churn: QueueChurn::default(),
            damaged_dropped: 1,
        };
        Snapshot {
            shards: vec![first, second],
        }
    }

    fn node() -> Node {
        Node {
            name: "hare@test".into(),
            resident_bytes: 1_000_000,
            memory_limit_bytes: 4_000_000,
            open_fds: 30,
            max_fds: 1024,
            open_sockets: 1,
            disk_free_bytes: 5_000_000_000,
            disk_free_limit_bytes: 50_000_000,
            disk_alarm: true,
            memory_alarm: false,
        }
    }

    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|line| !line.starts_with('#')).collect()
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in\n{text}"
        );
    }

    #[test]
    fn aggregated_sums_every_object_into_one_sample() {
        let text = render(&snapshot(), &node(), &Scope::Aggregated);
        for line in [
            "# TYPE rabbitmq_queue_messages_ready gauge",
            "# HELP rabbitmq_queue_messages_ready Messages ready to be delivered to consumers",
            "rabbitmq_queue_messages_ready 5",
            "rabbitmq_queue_messages_unacked 1",
            "rabbitmq_queue_messages 6",
            "rabbitmq_queue_consumers 2",
            "rabbitmq_queues 2",
            "rabbitmq_connections 1",
            "rabbitmq_channels 2",
            "rabbitmq_consumers 1",
            "rabbitmq_connections_opened_total 7",
            "rabbitmq_connections_closed_total 6",
            "rabbitmq_channels_opened_total 5",
            "rabbitmq_channels_closed_total 3",
            "rabbitmq_queues_declared_total 5",
            "rabbitmq_queues_created_total 2",
            "rabbitmq_queues_deleted_total 1",
            "rabbitmq_messages_damaged_dropped_total 3",
            // Open channels only, as RabbitMQ sums its channel table.
            "rabbitmq_channel_messages_published_total 10",
            "rabbitmq_channel_messages_confirmed_total 4",
            "rabbitmq_channel_messages_delivered_ack_total 4",
            "rabbitmq_channel_messages_delivered_total 2",
            "rabbitmq_channel_get_ack_total 2",
            "rabbitmq_queue_messages_published_total 10",
            "rabbitmq_connection_incoming_bytes_total 1000",
            "rabbitmq_process_resident_memory_bytes 1000000",
            "rabbitmq_alarms_free_disk_space_watermark 1",
            "rabbitmq_alarms_memory_used_watermark 0",
            "rabbitmq_identity_info{rabbitmq_node=\"hare@test\",rabbitmq_cluster=\"hare@test\",\
             rabbitmq_cluster_permanent_id=\"rabbitmq-cluster-id-hare@test\"} 1",
            // Closed channels stay in the global counters.
            "rabbitmq_global_messages_received_total{protocol=\"amqp091\"} 160",
            "rabbitmq_global_messages_received_confirm_total{protocol=\"amqp091\"} 104",
            "rabbitmq_global_messages_confirmed_total{protocol=\"amqp091\"} 104",
            "rabbitmq_global_publishers{protocol=\"amqp091\"} 2",
            "rabbitmq_global_messages_delivered_total{protocol=\"amqp091\",\
             queue_type=\"rabbit_classic_queue\"} 16",
            "rabbitmq_global_messages_acknowledged_total{protocol=\"amqp091\",\
             queue_type=\"rabbit_classic_queue\"} 8",
        ] {
            has(&text, line);
        }
        let labelled = samples(&text)
            .into_iter()
            .filter(|line| line.contains('{'))
            .filter(|line| !line.starts_with("rabbitmq_global_"))
            .filter(|line| !line.contains("_info{"))
            .collect::<Vec<_>>();
        assert!(labelled.is_empty(), "{labelled:?}");
    }

    #[test]
    fn per_object_labels_queues_channels_and_connections() {
        let text = render(&snapshot(), &node(), &Scope::PerObject);
        for line in [
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"q1\"} 3",
            "rabbitmq_queue_messages_ready{vhost=\"/\",queue=\"a \\\"quoted\\\\\\\" name\\n\"} 2",
            "rabbitmq_queue_messages{vhost=\"/\",queue=\"q1\"} 4",
            "rabbitmq_queue_messages_published_total{queue_vhost=\"/\",queue=\"q1\"} 5",
            "rabbitmq_channel_messages_published_total\
             {channel=\"127.0.0.1:40000 -> 127.0.0.1:5672 (2)\"} 6",
            "rabbitmq_consumer_prefetch{channel=\"127.0.0.1:40000 -> 127.0.0.1:5672 (1)\"} 10",
            "rabbitmq_connection_channels{channel=\"127.0.0.1:40000 -> 127.0.0.1:5672\"} 2",
            "rabbitmq_connection_outgoing_packets_total\
             {channel=\"127.0.0.1:40000 -> 127.0.0.1:5672\"} 20",
            "rabbitmq_queues 2",
        ] {
            has(&text, line);
        }
        assert!(!text.contains("rabbitmq_alarms_"), "{text}");
        has(&text, "# TYPE rabbitmq_channel_get_empty_total counter");
    }

    #[test]
    fn detailed_renders_only_the_groups_and_vhosts_asked_for() {
        let scope = Scope::Detailed {
            families: vec!["queue_coarse_metrics".into(), "queue_consumer_count".into()],
            vhosts: vec!["/".into()],
        };
        let text = render(&snapshot(), &node(), &scope);
        has(
            &text,
            "rabbitmq_detailed_queue_messages_ready{vhost=\"/\",queue=\"q1\"} 3",
        );
        has(
            &text,
            "rabbitmq_detailed_queue_consumers{vhost=\"/\",queue=\"q1\"} 1",
        );
        let families: Vec<_> = text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(
            families,
            [
                "rabbitmq_detailed_queue_messages_ready gauge",
                "rabbitmq_detailed_queue_messages_unacked gauge",
                "rabbitmq_detailed_queue_messages gauge",
                "rabbitmq_detailed_queue_consumers gauge",
                "rabbitmq_build_info untyped",
                "rabbitmq_identity_info untyped",
            ]
        );
        let other_vhost = Scope::Detailed {
            families: vec!["queue_coarse_metrics".into()],
            vhosts: vec!["other".into()],
        };
        let text = render(&snapshot(), &node(), &other_vhost);
        assert!(!text.contains("queue=\"q1\""), "{text}");
    }

    #[test]
    fn an_empty_broker_has_every_family_with_zeroes() {
        let empty = Snapshot { shards: Vec::new() };
        let text = render(&empty, &Node::default(), &Scope::Aggregated);
        has(&text, "rabbitmq_channel_messages_published_total 0");
        has(&text, "rabbitmq_queue_messages 0");
        let per_object = render(&empty, &Node::default(), &Scope::PerObject);
        assert!(
            !per_object.contains("rabbitmq_queue_messages_ready{"),
            "{per_object}"
        );
        has(&per_object, "# TYPE rabbitmq_queue_messages_ready gauge");
    }
}
