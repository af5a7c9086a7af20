//! `/api/exchanges[/{vhost}[/{name}]]`: exchange definitions from shard 0's registry copy,
//! with `publish_in` / `publish_out` summed over the shards that routed through them.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::management::dto::{self, short};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::management::stats::{self, Rates};
use crate::protocol::ShortStr;
use crate::shard::stats::ExchangeCounters;
use crate::vhost::exchange::Exchange;

type Counters = HashMap<(ShortStr, ShortStr), ExchangeCounters>;

/// `GET /api/exchanges` and `GET /api/exchanges/{vhost}`.
pub async fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let counters = stats::gather(&call.context.shard).await.exchange_counters();
    let rates = call.context.collector.rates();
    let items = {
        let registry = call.context.shard.registry.borrow();
        let mut items = Vec::new();
        for host in registry.vhosts() {
            if !call.lists(vhost, &host.name.to_string_lossy()) {
                continue;
            }
            for exchange in host.exchanges() {
                items.push(exchange_json(call, &host.name, exchange, &counters, &rates));
            }
        }
        items
    };
    call.list_offloaded(items).await
}

/// `GET /api/exchanges/{vhost}/{name}` (`amq.default` for the default exchange): adds
/// `incoming` and `outgoing`.
pub async fn one(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    if let Some(refused) = call.refuse_vhost(vhost) {
        return refused;
    }
    let counters = stats::gather(&call.context.shard).await.exchange_counters();
    let rates = call.context.collector.rates();
    let vhost = ShortStr::from_str_truncated(vhost);
    let registry = call.context.shard.registry.borrow();
    let Some(exchange) = registry
        .vhost(&vhost)
        .and_then(|host| host.exchange(&ShortStr::from_str_truncated(name)))
    else {
        return response::not_found();
    };
    let mut item = exchange_json(call, &vhost, exchange, &counters, &rates);
    drop(registry);
    if let Value::Object(fields) = &mut item {
        // Per-channel and per-queue breakdowns are not collected.
        fields.insert("incoming".into(), json!([]));
        fields.insert("outgoing".into(), json!([]));
    }
    call.one(item)
}

fn exchange_json(
    call: &Call<'_>,
    vhost: &ShortStr,
    exchange: &Exchange,
    counters: &Counters,
    rates: &Rates,
) -> Value {
    let definition = &exchange.definition;
    let mut item = json!({
        "name": short(&definition.name),
        "vhost": short(vhost),
        "type": definition.type_name(),
        "durable": definition.durable,
        "auto_delete": definition.auto_delete,
        "internal": definition.internal,
        "arguments": dto::field_table(&definition.arguments),
        "user_who_performed_action": "",
    });
    if call.query.disable_stats() {
        return item;
    }
    let key = (vhost.clone(), definition.name.clone());
    let own = counters.get(&key).copied().unwrap_or_default();
    let rate = |read: fn(&ExchangeCounters) -> u64| {
        rates.rate(|sample| sample.exchanges.get(&key).map(read))
    };
    let stats = dto::message_stats(&[
        ("publish_in", own.publish_in, rate(|c| c.publish_in)),
        ("publish_out", own.publish_out, rate(|c| c.publish_out)),
    ]);
    if let Value::Object(fields) = &mut item {
        fields.insert("message_stats".into(), stats);
    }
    item
}
