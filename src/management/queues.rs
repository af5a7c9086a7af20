//! `/api/queues[/{vhost}[/{name}]]`: every queue's definition (shard 0's registry copy) with
//! its depth, consumers and counters from its owner shard (a fresh snapshot) and rates from
//! the collector's last two samples.

use serde_json::{json, Map, Value};

use crate::fast_map::FastMap;
use crate::ids::{ConnectionId, QueueId};
use crate::management::consumers;
use crate::management::dto::{self, short};
use crate::management::listing::{self, Keyed};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::management::stats::{self, Rates, Snapshot};
use crate::protocol::ShortStr;
use crate::queue::settings::{QueueSettings, QueueType};
use crate::shard::stats::QueueStats;
use crate::vhost::policy::{effective_policy, EffectivePolicy, PolicyTarget};
use crate::vhost::queue_definition::QueueDefinition;

/// `GET /api/queues` and `GET /api/queues/{vhost}`.
pub async fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let snapshot = stats::gather(&call.context.shard).await;
    let view = View::new(call, &snapshot);
    // Copied out first: building the items yields, and the registry must not stay borrowed
    // across a yield (a metadata update borrows it mutably).
    let definitions: Vec<(ShortStr, QueueDefinition)> = {
        let registry = call.context.shard.registry.borrow();
        registry
            .vhosts()
            .filter(|host| call.lists(vhost, &host.name.to_string_lossy()))
            .flat_map(|host| {
                host.queues()
                    .map(|definition| (host.name.clone(), definition.clone()))
            })
            .collect()
    };
    // A page sorted by name (what the web UI asks for): only its queues become JSON.
    if listing::pages_early(call.query) {
        let keyed = definitions
            .into_iter()
            .map(|(host, definition)| Keyed {
                vhost: host.to_string_lossy(),
                name: definition.name.to_string_lossy(),
                object: (host, definition),
            })
            .collect();
        return match listing::early_page(keyed, call.query) {
            Ok(page) => {
                let items = build(&view, &page.objects).await;
                response::ok(&page.answer(items, call.query))
            }
            Err(error) => response::bad_request(&error.0),
        };
    }
    let items = build(&view, &definitions).await;
    call.list_offloaded(items).await
}

/// Each queue's JSON, yielding now and then.
async fn build(view: &View<'_>, definitions: &[(ShortStr, QueueDefinition)]) -> Vec<Value> {
    let mut items = Vec::with_capacity(definitions.len());
    for (index, (host, definition)) in definitions.iter().enumerate() {
        if index % ITEMS_PER_YIELD == ITEMS_PER_YIELD - 1 {
            // Let shard 0's data path run: the task queue's shares only count at yields.
            glommio::executor().yield_task_queue_now().await;
        }
        items.push(view.queue(host, definition));
    }
    items
}

/// Queues turned into JSON between two yields of a listing (about 10 ms of work).
const ITEMS_PER_YIELD: usize = 500;

/// `GET /api/queues/{vhost}/{name}`: adds `consumer_details`, `incoming` and `deliveries`.
pub async fn one(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    if let Some(refused) = call.refuse_vhost(vhost) {
        return refused;
    }
    let snapshot = stats::gather(&call.context.shard).await;
    let view = View::new(call, &snapshot);
    let vhost_name = ShortStr::from_str_truncated(vhost);
    let registry = call.context.shard.registry.borrow();
    let Some(definition) = registry
        .vhost(&vhost_name)
        .and_then(|host| host.queue(&ShortStr::from_str_truncated(name)))
    else {
        return response::not_found();
    };
    let mut item = view.queue(&vhost_name, definition);
    let connections = snapshot.connections_by_id();
    let details: Vec<Value> = snapshot
        .consumers()
        .filter(|consumer| consumer.queue == definition.id)
        .map(|consumer| consumers::consumer_json(call.context, consumer, &connections))
        .collect();
    if let Value::Object(fields) = &mut item {
        fields.insert("consumer_details".into(), Value::Array(details));
        fields.insert("incoming".into(), json!([]));
        fields.insert("deliveries".into(), json!([]));
    }
    drop(registry);
    call.one(item)
}

/// What a queue's JSON is built from.
struct View<'a> {
    call: &'a Call<'a>,
    stats: FastMap<QueueId, &'a QueueStats>,
    /// Exclusive queues' owners: (name, peer host, peer port).
    owners: FastMap<ConnectionId, (String, String, u16)>,
    rates: Rates,
    disable_stats: bool,
}

impl<'a> View<'a> {
    fn new(call: &'a Call<'a>, snapshot: &'a Snapshot) -> View<'a> {
        View {
            call,
            stats: snapshot.queues().map(|queue| (queue.id, queue)).collect(),
            owners: snapshot
                .connections()
                .map(|c| {
                    let name = dto::connection_name(c.peer, c.local);
                    (c.id, (name, c.peer.ip().to_string(), c.peer.port()))
                })
                .collect(),
            rates: call.context.collector.rates(),
            disable_stats: call.query.disable_stats(),
        }
    }

    /// The queue's policies; the vhost's patterns are compiled only if it has any.
    fn policy(
        &self,
        vhost: &ShortStr,
        definition: &QueueDefinition,
        queue_type: QueueType,
    ) -> EffectivePolicy {
        let registry = self.call.context.shard.registry.borrow();
        let access = registry.access();
        let vhost = vhost.to_string_lossy();
        if !access.policies.keys().any(|(_, of, _)| *of == vhost) {
            return EffectivePolicy::default();
        }
        effective_policy(
            access,
            &vhost,
            definition.name.as_bytes(),
            PolicyTarget::Queue(queue_type),
        )
    }

    fn queue(&self, vhost: &ShortStr, definition: &QueueDefinition) -> Value {
        let mut fields = Map::new();
        let queue_type = QueueSettings::parse(&definition.arguments)
            .map(|settings| settings.queue_type)
            .unwrap_or_default();
        let policy = self.policy(vhost, definition, queue_type);
        let identity = json!({
            "name": short(&definition.name),
            "vhost": short(vhost),
            "type": match queue_type {
                QueueType::Classic => "classic",
                QueueType::Quorum => "quorum",
            },
            "durable": definition.durable,
            "auto_delete": definition.auto_delete,
            "exclusive": definition.exclusive_owner.is_some(),
            "arguments": dto::field_table(&definition.arguments),
            "node": self.call.context.node,
            // Hare addition: the shard that owns the queue (docs/management-api.md).
            "hare_shard": definition.owner_shard.0,
            "state": "running",
            "policy": policy.policy,
            "operator_policy": policy.operator_policy,
            "effective_policy_definition": Value::Object(policy.definition),
            "exclusive_consumer_tag": Value::Null,
            "single_active_consumer_tag": Value::Null,
        });
        if let Value::Object(identity) = identity {
            fields.extend(identity);
        }
        if let Some(owner) = definition
            .exclusive_owner
            .and_then(|owner| self.owners.get(&owner))
        {
            fields.insert(
                "owner_pid_details".into(),
                json!({"name": owner.0, "peer_host": owner.1, "peer_port": owner.2}),
            );
        }
        let stats = self.stats.get(&definition.id).copied();
        self.depth(&mut fields, definition.id, stats);
        Value::Object(fields)
    }

    /// Depth, consumers and (unless disabled) counters with their rates.
    fn depth(&self, fields: &mut Map<String, Value>, id: QueueId, stats: Option<&QueueStats>) {
        let ready = stats.map_or(0, |s| s.ready_count);
        let unacked = stats.map_or(0, |s| s.unacked_count);
        let ready_bytes = stats.map_or(0, |s| s.ready_bytes);
        let unacked_bytes = stats.map_or(0, |s| s.unacked_bytes);
        let resident = stats.map_or(0, |s| s.resident_count);
        let consumers = stats.map_or(0, |s| s.consumer_count);
        let capacity = if consumers > 0 { 1.0 } else { 0.0 };
        let depth = json!({
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
        });
        if let Value::Object(depth) = depth {
            fields.extend(depth);
        }
        if self.disable_stats {
            if !self.call.query.flag("enable_queue_totals") {
                fields.remove("messages");
                fields.remove("messages_ready");
                fields.remove("messages_unacknowledged");
            }
            return;
        }
        let rate = |read: fn(&stats::QueueSample) -> u64| {
            self.rates.rate(|sample| sample.queues.get(&id).map(read))
        };
        let more = json!({
            "messages_details": dto::details(rate(|q| q.ready + q.unacked)),
            "messages_ready_details": dto::details(rate(|q| q.ready)),
            "messages_unacknowledged_details": dto::details(rate(|q| q.unacked)),
            "messages_ram": resident + unacked,
            "messages_ready_ram": resident,
            "messages_unacknowledged_ram": unacked,
            "messages_paged_out": ready.saturating_sub(resident),
            "message_bytes": ready_bytes + unacked_bytes,
            "message_bytes_ready": ready_bytes,
            "message_bytes_unacknowledged": unacked_bytes,
            "head_message_timestamp": Value::Null,
            "consumers": consumers,
            // RabbitMQ 3.13 reports the same value under both names (utilisation is the old
            // one); a consumer that has credit takes a message at once here.
            "consumer_utilisation": capacity,
            "consumer_capacity": capacity,
            "memory": stats.map_or(0, |s| s.memory_bytes),
            "reductions": 0,
            "storage_version": 2,
            "message_stats": self.message_stats(id, stats),
        });
        if let Value::Object(more) = more {
            fields.extend(more);
        }
        if consumers == 0 {
            if let Some(stats) = stats {
                fields.insert(
                    "idle_since".into(),
                    Value::String(dto::timestamp_text(stats.last_used_ms)),
                );
            }
        }
    }

    fn message_stats(&self, id: QueueId, stats: Option<&QueueStats>) -> Value {
        let counters = stats.map(|s| s.counters).unwrap_or_default();
        let rate = |read: fn(&crate::queue::counters::QueueCounters) -> u64| {
            self.rates
                .rate(|sample| sample.queues.get(&id).map(|queue| read(&queue.counters)))
        };
        dto::message_stats(&[
            ("publish", counters.publish, rate(|c| c.publish)),
            ("deliver", counters.deliver, rate(|c| c.deliver)),
            (
                "deliver_no_ack",
                counters.deliver_no_ack,
                rate(|c| c.deliver_no_ack),
            ),
            ("get", counters.get, rate(|c| c.get)),
            ("get_no_ack", counters.get_no_ack, rate(|c| c.get_no_ack)),
            ("get_empty", counters.get_empty, rate(|c| c.get_empty)),
            (
                "deliver_get",
                counters.deliver_get(),
                rate(|c| c.deliver_get()),
            ),
            ("redeliver", counters.redeliver, rate(|c| c.redeliver)),
            ("ack", counters.ack, rate(|c| c.ack)),
        ])
    }
}
