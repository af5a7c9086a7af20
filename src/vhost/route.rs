//! Routing a published message through one vhost's local copy: the exchange's bindings,
//! exchange-to-exchange bindings (cycles end), alternate exchanges, and the default exchange's
//! implicit binding of every queue by name. The result is a deduplicated set of queue ids:
//! a queue reached by several paths gets one copy.

use crate::ids::{ExchangeId, QueueId};
use crate::protocol::{FieldTable, ShortStr};
use crate::vhost::exchange::{Destination, Exchange};
use crate::vhost::VHost;

/// Exchange-to-exchange chains longer than this are cut: it bounds the work one publish can
/// cause, whatever the bindings.
pub const ROUTE_EXCHANGE_VISITS_MAX: usize = 64;

/// Scratch space reused across publishes so routing does not allocate per message.
#[derive(Debug, Default)]
pub struct RouteScratch {
    destinations: Vec<Destination>,
    pending: Vec<ExchangeId>,
    visited: Vec<ExchangeId>,
}

impl VHost {
    /// Routes from `exchange` into `queues` (cleared first). Returns the queue ids sorted and
    /// deduplicated.
    pub fn route(
        &self,
        exchange: &Exchange,
        routing_key: &ShortStr,
        headers: Option<&FieldTable>,
        scratch: &mut RouteScratch,
        queues: &mut Vec<QueueId>,
    ) {
        queues.clear();
        scratch.pending.clear();
        scratch.visited.clear();
        scratch.pending.push(exchange.id());
        while let Some(id) = scratch.pending.pop() {
            if scratch.visited.contains(&id) || scratch.visited.len() >= ROUTE_EXCHANGE_VISITS_MAX {
                continue;
            }
            scratch.visited.push(id);
            let Some(current) = self.exchange_by_id(id) else {
                continue;
            };
            let routed_before = queues.len() + scratch.pending.len();
            if current.name().is_empty() {
                // The default exchange binds every queue by its name.
                if let Some(queue) = self.queue(routing_key) {
                    queues.push(queue.id);
                }
            } else {
                scratch.destinations.clear();
                let header_entries = headers.map(|table| table.entries.as_slice());
                current.bindings.route(
                    routing_key.as_bytes(),
                    header_entries,
                    &mut scratch.destinations,
                );
                for destination in &scratch.destinations {
                    match *destination {
                        Destination::Queue(queue) => queues.push(queue),
                        Destination::Exchange(next) => scratch.pending.push(next),
                    }
                }
            }
            let routed_nothing = queues.len() + scratch.pending.len() == routed_before;
            if routed_nothing {
                if let Some(alternate) = current
                    .alternate_exchange
                    .as_ref()
                    .and_then(|name| self.exchange(name))
                {
                    scratch.pending.push(alternate.id());
                }
            }
        }
        queues.sort_unstable();
        queues.dedup();
    }
}
