//! Routing a published message through one vhost's local copy: the exchange's bindings,
//! exchange-to-exchange bindings (cycles end), alternate exchanges, and the default exchange's
//! implicit binding of every queue by name. The result is a deduplicated set of queue ids:
//! a queue reached by several paths gets one copy.

use crate::ids::{ExchangeId, QueueId};
use crate::protocol::{BasicProperties, FieldTable, ShortStr};
use crate::routing::{ExchangeKind, HashInputs};
use crate::vhost::exchange::{Destination, Exchange};
use crate::vhost::VHost;

/// Exchange-to-exchange chains longer than this are cut: it bounds the work one publish can
/// cause, whatever the bindings.
pub const ROUTE_EXCHANGE_VISITS_MAX: usize = 64;

/// The header whose value a message-deduplication exchange deduplicates on.
pub const DEDUP_HEADER: &str = "x-deduplication-header";

/// Scratch space reused across publishes so routing does not allocate per message.
#[derive(Debug, Default)]
pub struct RouteScratch {
    destinations: Vec<Destination>,
    pending: Vec<ExchangeId>,
    visited: Vec<ExchangeId>,
    /// The message's deduplication exchanges are decided by their caches (`begin_message`);
    /// otherwise (dead lettering) they route as fanout.
    dedup_checked: bool,
    /// For the message being routed: what each deduplication exchange's cache said (true:
    /// new, route it; false: a duplicate).
    dedup_decisions: Vec<(ExchangeId, bool)>,
    /// Deduplication exchanges the route reached with no decision yet: it routed nothing
    /// through them, and must be run again once their caches have answered.
    pub dedup_undecided: Vec<ExchangeId>,
}

impl RouteScratch {
    /// Starts routing a new message whose deduplication exchanges must ask their caches.
    pub fn begin_message(&mut self) {
        self.dedup_checked = true;
        self.dedup_decisions.clear();
        self.dedup_undecided.clear();
    }

    /// Records a cache's answer for the message being routed.
    pub fn decide(&mut self, exchange: ExchangeId, fresh: bool) {
        self.dedup_decisions.push((exchange, fresh));
    }
}

/// Whether a routing pass goes through an exchange's bindings.
enum Pass {
    Route,
    /// A duplicate for a deduplication exchange: routes nothing (the alternate exchange, if
    /// any, takes it, as in RabbitMQ).
    Duplicate,
    /// Its cache has not answered yet.
    Undecided,
}

/// What routing reads of a published message besides the key being routed: built once per
/// message from fields it already has, and shared by the routes of its `CC` / `BCC` keys.
#[derive(Debug, Clone, Copy)]
pub struct RoutedMessage<'a> {
    pub headers: Option<&'a FieldTable>,
    /// What a consistent-hash exchange may hash, with the published routing key.
    pub hashed: HashInputs<'a>,
}

impl<'a> RoutedMessage<'a> {
    pub fn new(routing_key: &'a ShortStr, properties: &'a BasicProperties) -> RoutedMessage<'a> {
        RoutedMessage {
            headers: properties.headers.as_ref(),
            hashed: HashInputs {
                routing_key: routing_key.as_bytes(),
                message_id: properties.message_id.as_ref().map(ShortStr::as_bytes),
                correlation_id: properties.correlation_id.as_ref().map(ShortStr::as_bytes),
                timestamp: properties.timestamp,
            },
        }
    }
}

impl VHost {
    /// Routes from `exchange` into `queues` (cleared first). Returns the queue ids sorted and
    /// deduplicated. `routing_key` is the published key or one of the message's `CC` / `BCC`
    /// keys.
    pub fn route(
        &self,
        exchange: &Exchange,
        routing_key: &ShortStr,
        message: &RoutedMessage<'_>,
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
            match dedup_pass(current, message, scratch) {
                Pass::Route => {}
                Pass::Duplicate => {
                    self.push_alternate(current, scratch);
                    continue;
                }
                Pass::Undecided => {
                    scratch.dedup_undecided.push(id);
                    continue;
                }
            }
            if current.name().is_empty() {
                // The default exchange binds every queue by its name.
                if let Some(queue) = self.queue(routing_key) {
                    queues.push(queue.id);
                }
            } else {
                scratch.destinations.clear();
                let header_entries = message.headers.map(|table| table.entries.as_slice());
                current.bindings.route(
                    routing_key.as_bytes(),
                    header_entries,
                    &message.hashed,
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
                self.push_alternate(current, scratch);
            }
        }
        queues.sort_unstable();
        queues.dedup();
    }

    /// `current` routed nothing: its alternate exchange, if any, is visited next.
    fn push_alternate(&self, current: &Exchange, scratch: &mut RouteScratch) {
        if let Some(alternate) = current
            .alternate_exchange
            .as_ref()
            .and_then(|name| self.exchange(name))
        {
            scratch.pending.push(alternate.id());
        }
    }
}

/// A deduplication exchange lets a message with the header through only if its cache said
/// the value is new; other exchanges, and messages without the header, always pass.
fn dedup_pass(current: &Exchange, message: &RoutedMessage<'_>, scratch: &RouteScratch) -> Pass {
    if current.definition.kind != ExchangeKind::MessageDeduplication || !scratch.dedup_checked {
        return Pass::Route;
    }
    if message
        .headers
        .is_none_or(|headers| headers.get(DEDUP_HEADER).is_none())
    {
        return Pass::Route;
    }
    match scratch
        .dedup_decisions
        .iter()
        .find(|(exchange, _)| *exchange == current.id())
    {
        Some((_, true)) => Pass::Route,
        Some((_, false)) => Pass::Duplicate,
        None => Pass::Undecided,
    }
}
