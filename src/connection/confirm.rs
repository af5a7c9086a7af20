//! Publisher confirms of one channel. Publishes are numbered from 1; each waits for every
//! shard it was routed to. Acks go out coalesced (`multiple=true`) over runs of completed
//! publishes at the front; a refused publish gets its own nack, never a false ack.

use std::collections::VecDeque;

use crate::ids::PublishSeq;

#[derive(Debug)]
struct Pending {
    seq: u64,
    /// Shards that have not answered yet.
    remaining: u16,
    refused: bool,
}

/// One basic.ack or basic.nack to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmFrame {
    pub delivery_tag: u64,
    pub multiple: bool,
    pub ack: bool,
}

/// Numbers a channel's publishes from 1 (`new`) and turns shards' answers into confirms.
#[derive(Debug)]
pub struct ConfirmTracker {
    next_seq: u64,
    /// In seq order, contiguous: pending[i].seq == pending[0].seq + i.
    pending: VecDeque<Pending>,
    /// Publishes confirmed (acked or nacked) so far, for the channel's statistics.
    confirmed: u64,
    /// The channel is listed in its connection's channels with confirms to write.
    due: bool,
}

impl ConfirmTracker {
    // No Default: publishes are numbered from 1, and only confirm.select creates a tracker.
    #[allow(clippy::new_without_default)]
    pub fn new() -> ConfirmTracker {
        ConfirmTracker {
            next_seq: 1,
            pending: VecDeque::new(),
            confirmed: 0,
            due: false,
        }
    }

    /// Numbers a publish that waits for `shards` answers (0 = unroutable, done at once).
    pub fn publish(&mut self, shards: u16) -> PublishSeq {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(last) = self.pending.back() {
            assert_eq!(last.seq + 1, seq);
        }
        self.pending.push_back(Pending {
            seq,
            remaining: shards,
            refused: false,
        });
        PublishSeq(seq)
    }

    /// One shard answered for `seq`.
    pub fn answered(&mut self, seq: PublishSeq, ok: bool) {
        let Some(front) = self.pending.front() else {
            return;
        };
        let Some(index) = seq.0.checked_sub(front.seq) else {
            return;
        };
        let Some(entry) = usize::try_from(index)
            .ok()
            .and_then(|index| self.pending.get_mut(index))
        else {
            return;
        };
        assert!(entry.remaining > 0, "one answer per shard per publish");
        entry.remaining -= 1;
        entry.refused |= !ok;
    }

    /// Pops the completed publishes at the front as coalesced acks and single nacks.
    pub fn drain_completed(&mut self, out: &mut Vec<ConfirmFrame>) {
        self.due = false;
        let mut ack_run_end: Option<u64> = None;
        let mut ack_run_len = 0u64;
        while let Some(front) = self.pending.front() {
            if front.remaining > 0 {
                break;
            }
            let front = self.pending.pop_front().expect("checked above");
            self.confirmed += 1;
            if front.refused {
                if let Some(end) = ack_run_end.take() {
                    out.push(ConfirmFrame {
                        delivery_tag: end,
                        multiple: ack_run_len > 1,
                        ack: true,
                    });
                    ack_run_len = 0;
                }
                out.push(ConfirmFrame {
                    delivery_tag: front.seq,
                    multiple: false,
                    ack: false,
                });
            } else {
                ack_run_end = Some(front.seq);
                ack_run_len += 1;
            }
        }
        if let Some(end) = ack_run_end {
            out.push(ConfirmFrame {
                delivery_tag: end,
                multiple: ack_run_len > 1,
                ack: true,
            });
        }
    }

    /// Notes that confirms may be ready to write; true if the channel was not noted yet, so
    /// the caller lists it once.
    pub fn mark_due(&mut self) -> bool {
        !std::mem::replace(&mut self.due, true)
    }

    /// Publishes confirmed so far.
    pub fn confirmed(&self) -> u64 {
        self.confirmed
    }

    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_runs_coalesce_into_one_multiple_ack() {
        let mut tracker = ConfirmTracker::new();
        let seqs: Vec<PublishSeq> = (0..5).map(|_| tracker.publish(1)).collect();
        for seq in &seqs {
            tracker.answered(*seq, true);
        }
        let mut out = Vec::new();
        tracker.drain_completed(&mut out);
        assert_eq!(
            out,
            vec![ConfirmFrame {
                delivery_tag: 5,
                multiple: true,
                ack: true
            }]
        );
        assert_eq!(tracker.outstanding(), 0);
    }

    #[test]
    fn acks_wait_for_the_front_and_for_every_shard() {
        let mut tracker = ConfirmTracker::new();
        let first = tracker.publish(2);
        let second = tracker.publish(1);
        tracker.answered(second, true);
        tracker.answered(first, true);
        let mut out = Vec::new();
        tracker.drain_completed(&mut out);
        assert!(out.is_empty(), "first still waits for one shard");
        tracker.answered(first, true);
        tracker.drain_completed(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].delivery_tag, 2);
    }

    #[test]
    fn a_refusal_is_a_single_nack_between_ack_runs() {
        let mut tracker = ConfirmTracker::new();
        let a = tracker.publish(1);
        let b = tracker.publish(1);
        let c = tracker.publish(0);
        tracker.answered(a, true);
        tracker.answered(b, false);
        let _ = c;
        let mut out = Vec::new();
        tracker.drain_completed(&mut out);
        assert_eq!(
            out,
            vec![
                ConfirmFrame {
                    delivery_tag: 1,
                    multiple: false,
                    ack: true
                },
                ConfirmFrame {
                    delivery_tag: 2,
                    multiple: false,
                    ack: false
                },
                ConfirmFrame {
                    delivery_tag: 3,
                    multiple: false,
                    ack: true
                },
            ]
        );
    }
}
