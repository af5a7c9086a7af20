//! The caches of message-deduplication exchanges. A publish is routed on its publisher's shard,
//! but a cache per shard would let a duplicate through whenever the two copies were published
//! on different shards. So each exchange's cache lives on one shard, its **cache shard**
//! (chosen from the exchange id, the same on every shard), and a publisher's shard asks it
//! whether a header value is new before it routes through the exchange. Only publishes that
//! reach a deduplication exchange with an `x-deduplication-header` pay: one mesh round trip
//! when the cache shard is another one, none when it is their own. The cache shard's answer is
//! final and is made atomically there (look up and insert in one handler), so two shards can
//! never both be told a value is new. Caches are in memory only: after a restart they start
//! empty (docs/ARCHITECTURE.md, Message deduplication).

use std::collections::hash_map::Entry;
use std::rc::Rc;

use bytes::Bytes;

use crate::ids::{ExchangeId, ShardId};
use crate::protocol::{FieldTable, ShortStr};
use crate::queue::expiry::now_ms;
use crate::routing::dedup::DedupCache;
use crate::shard::message::{Reply, ShardMessage};
use crate::shard::pending::ReplyTo;
use crate::shard::Shard;
use crate::vhost::delta::{MetaDelta, MetaUpdate};
use crate::vhost::route::DEDUP_HEADER;

/// The per-message header that overrides the exchange's `x-cache-ttl`.
pub const CACHE_TTL_HEADER: &str = "x-cache-ttl";

/// What a deduplication exchange checks of one message.
#[derive(Debug, Clone)]
pub struct DedupQuery {
    /// The identity bytes of its `x-deduplication-header` value.
    pub key: Bytes,
    /// Its `x-cache-ttl` header, if it is an integer (milliseconds).
    pub ttl_ms: Option<i64>,
}

impl DedupQuery {
    /// The query for a message with these headers; None without the deduplication header.
    pub fn of(headers: Option<&FieldTable>) -> Option<DedupQuery> {
        let headers = headers?;
        let value = headers.get(DEDUP_HEADER)?;
        Some(DedupQuery {
            key: value.identity_bytes(),
            ttl_ms: headers.get(CACHE_TTL_HEADER).and_then(|ttl| ttl.as_i64()),
        })
    }
}

/// The shard that holds `exchange`'s cache.
pub fn cache_shard(shard: &Shard, exchange: ExchangeId) -> ShardId {
    let count = shard.shard_count() as u64;
    ShardId(u16::try_from(exchange.0 % count).expect("shard count fits u16"))
}

/// Asks the exchange's cache whether the message's value is new (and records it if so).
pub async fn is_new(
    shard: &Rc<Shard>,
    vhost: &ShortStr,
    exchange: ExchangeId,
    query: &DedupQuery,
) -> bool {
    let owner = cache_shard(shard, exchange);
    if owner == shard.id {
        return check(shard, vhost, exchange, query);
    }
    let reply = shard
        .request(owner, |reply_to| ShardMessage::DedupCheck {
            reply_to,
            vhost: vhost.clone(),
            exchange,
            query: query.clone(),
        })
        .await;
    match reply {
        Reply::DedupChecked { fresh } => fresh,
        // Never sent for this request; routing the message is the safe side for a publisher.
        _ => true,
    }
}

/// The cache shard's side of `is_new`.
pub fn handle_check(
    shard: &Rc<Shard>,
    reply_to: ReplyTo,
    vhost: &ShortStr,
    exchange: ExchangeId,
    query: &DedupQuery,
) {
    let fresh = check(shard, vhost, exchange, query);
    shard.reply(reply_to, Reply::DedupChecked { fresh });
}

/// Looks the value up in this shard's cache of the exchange, creating the cache from the
/// exchange's arguments on first use. An exchange that is gone lets the message through (its
/// route finds nothing anyway).
fn check(shard: &Shard, vhost: &ShortStr, exchange: ExchangeId, query: &DedupQuery) -> bool {
    let mut caches = shard.dedup_caches.borrow_mut();
    let cache = match caches.entry(exchange) {
        Entry::Occupied(cache) => cache.into_mut(),
        Entry::Vacant(vacant) => {
            let registry = shard.registry.borrow();
            let settings = registry
                .vhost(vhost)
                .and_then(|metadata| metadata.exchange_by_id(exchange))
                .and_then(|found| found.definition.dedup_settings().ok().flatten());
            let Some(settings) = settings else {
                return true;
            };
            vacant.insert(DedupCache::new(settings.cache_size, settings.cache_ttl_ms))
        }
    };
    cache.insert(query.key.clone(), query.ttl_ms, now_ms())
}

/// Drops the caches of exchanges a metadata update deletes (before it is applied, while their
/// names still resolve to ids).
pub fn forget_deleted(shard: &Shard, update: &MetaUpdate) {
    let mut caches = shard.dedup_caches.borrow_mut();
    if caches.is_empty() {
        return;
    }
    let registry = shard.registry.borrow();
    let Some(vhost) = registry.vhost(&update.vhost) else {
        return;
    };
    for delta in &update.deltas {
        if let MetaDelta::ExchangeDeleted { name } = delta {
            if let Some(exchange) = vhost.exchange(name) {
                caches.remove(&exchange.id());
            }
        }
    }
}
