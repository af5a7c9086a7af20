//! `Ledger`: the soak's accounting of checked messages, shared by every worker.
//!
//! Each message carries a run-unique id in its first 8 body bytes (big-endian); ids are never
//! reused, not even when a publish is retried after a crash (a retry gets a new id), so a
//! second delivery of an id is always a redelivery of the same message.
//!
//! - **confirmed**: published persistent to a checked (durable, no TTL, no length limit, never
//!   deleted) queue, and the broker said so: a publisher confirm `basic.ack`, or `commit-ok` of
//!   the transaction that carried it. Each must be acked by some consumer by the end: the
//!   difference is `lost`.
//! - **acked**: a consumer sent `basic.ack` for it at least once.
//! - **proven acked**: the ack is known to be on disk (see `consumers.rs` for the proof); a
//!   later delivery of such an id is an **acked return**. An ack that is only *sent* may come
//!   back after `kill -9`, as in RabbitMQ, and is not held against the broker.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

/// How many ids a failure report quotes.
const SAMPLE_MAX: usize = 10;

/// The shared accounting; see the module doc.
#[derive(Debug, Default)]
pub struct Ledger {
    inner: Mutex<Books>,
}

/// What the ledger knows at a moment, for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LedgerTotals {
    pub published: u64,
    pub confirmed: u64,
    pub committed: u64,
    /// Checked publishes the broker refused (`basic.nack`): not confirmed, so not checked.
    pub nacked: u64,
    pub deliveries: u64,
    pub redelivered: u64,
    pub acked: u64,
    pub proven_acked: u64,
    pub refused: u64,
    /// Deliveries of an id acked before (but not proven): allowed after a crash.
    pub acked_again: u64,
    pub acked_returns: u64,
    pub acked_returns_sample: Vec<u64>,
    pub unknown_deliveries: u64,
}

#[derive(Debug, Default)]
struct Books {
    confirmed: HashSet<u64>,
    acked: HashSet<u64>,
    proven: HashSet<u64>,
    totals: LedgerTotals,
    errors: BTreeMap<String, u64>,
}

impl Ledger {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        // A worker that panicked while holding the lock left consistent sets behind: every
        // update below is a single insert or counter step.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `count` messages went out (confirmed or not, checked or not).
    pub fn published(&self, count: u64) {
        self.books().totals.published += count;
    }

    /// The broker confirmed these checked ids (`basic.ack` in confirm mode).
    pub fn confirmed(&self, ids: &[u64]) {
        let mut books = self.books();
        books.totals.confirmed += ids.len() as u64;
        books.confirmed.extend(ids);
    }

    /// The broker refused `count` checked publishes.
    pub fn nacked(&self, count: u64) {
        self.books().totals.nacked += count;
    }

    /// A transaction carrying these checked ids got `commit-ok`.
    pub fn committed(&self, ids: &[u64]) {
        let mut books = self.books();
        books.totals.committed += ids.len() as u64;
        books.confirmed.extend(ids);
    }

    /// A delivery of `id` arrived (`None`: a body without a readable id).
    pub fn delivered(&self, id: Option<u64>, redelivered: bool) {
        let mut books = self.books();
        books.totals.deliveries += 1;
        books.totals.redelivered += u64::from(redelivered);
        let Some(id) = id else {
            books.totals.unknown_deliveries += 1;
            return;
        };
        if books.proven.contains(&id) {
            books.totals.acked_returns += 1;
            if books.totals.acked_returns_sample.len() < SAMPLE_MAX {
                books.totals.acked_returns_sample.push(id);
            }
        } else if books.acked.contains(&id) {
            books.totals.acked_again += 1;
        }
    }

    /// A consumer sent `basic.ack` for `id`.
    pub fn acked(&self, id: u64) {
        let mut books = self.books();
        books.totals.acked += 1;
        books.acked.insert(id);
    }

    /// True if some consumer sent `basic.ack` for `id`.
    pub fn was_acked(&self, id: u64) -> bool {
        self.books().acked.contains(&id)
    }

    /// A consumer refused a delivery with requeue.
    pub fn refused(&self) {
        self.books().totals.refused += 1;
    }

    /// These acks are on disk (see `consumers.rs`).
    pub fn proven(&self, ids: &[u64]) {
        let mut books = self.books();
        books.totals.proven_acked += ids.len() as u64;
        books.proven.extend(ids);
    }

    /// Counts a client error by kind.
    pub fn error(&self, kind: String) {
        *self.books().errors.entry(kind).or_default() += 1;
    }

    pub fn totals(&self) -> LedgerTotals {
        self.books().totals.clone()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.books().errors.clone()
    }

    /// Confirmed ids never acked: how many, and a sample (smallest first).
    pub fn unacked_confirmed(&self) -> (u64, Vec<u64>) {
        let books = self.books();
        let mut missing: Vec<u64> = books
            .confirmed
            .iter()
            .filter(|id| !books.acked.contains(id))
            .copied()
            .collect();
        missing.sort_unstable();
        let count = missing.len() as u64;
        missing.truncate(SAMPLE_MAX);
        (count, missing)
    }

    /// The number of distinct confirmed ids and acked ids (progress of the final drain).
    pub fn distinct_counts(&self) -> (u64, u64) {
        let books = self.books();
        (books.confirmed.len() as u64, books.acked.len() as u64)
    }
}

/// A body's id: its first 8 bytes, big-endian.
pub fn body_id(body: &[u8]) -> Option<u64> {
    body.first_chunk::<8>().map(|b| u64::from_be_bytes(*b))
}

/// A body of `size` bytes (at least 8) carrying `id`.
pub fn body_for(id: u64, size: usize) -> Vec<u8> {
    let mut body = vec![0u8; size.max(8)];
    body[..8].copy_from_slice(&id.to_be_bytes());
    body
}

/// Run-unique ids: a worker's number in the top 24 bits, its own counter below.
#[derive(Debug)]
pub struct IdSource {
    next: u64,
}

impl IdSource {
    pub fn new(worker: u32) -> IdSource {
        IdSource {
            next: u64::from(worker) << 40,
        }
    }

    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_id_never_acked_is_lost() {
        let ledger = Ledger::default();
        ledger.confirmed(&[1, 2]);
        ledger.committed(&[3]);
        ledger.acked(2);
        ledger.acked(3);
        assert_eq!(ledger.unacked_confirmed(), (1, vec![1]));
        ledger.acked(1);
        assert_eq!(ledger.unacked_confirmed(), (0, vec![]));
    }

    #[test]
    fn only_a_proven_ack_makes_a_redelivery_a_violation() {
        let ledger = Ledger::default();
        ledger.delivered(Some(7), false);
        ledger.acked(7);
        ledger.delivered(Some(7), true);
        let totals = ledger.totals();
        assert_eq!((totals.acked_again, totals.acked_returns), (1, 0));
        ledger.proven(&[7]);
        ledger.delivered(Some(7), true);
        let totals = ledger.totals();
        assert_eq!(totals.acked_returns, 1);
        assert_eq!(totals.acked_returns_sample, vec![7]);
        assert_eq!(totals.deliveries, 3);
        assert_eq!(totals.redelivered, 2);
    }

    #[test]
    fn ids_are_unique_per_worker_and_round_trip_through_bodies() {
        let mut a = IdSource::new(1);
        let mut b = IdSource::new(2);
        let (x, y) = (a.next_id(), b.next_id());
        assert_ne!(x, y);
        assert_eq!(body_id(&body_for(x, 16)), Some(x));
        assert_eq!(body_for(y, 3).len(), 8);
        assert_eq!(body_id(&[1, 2]), None);
    }
}
