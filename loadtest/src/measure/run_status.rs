//! `RunStatus`: what the scenario is doing now, for the progress line: the phase it is in, when
//! that phase is planned to end (if it runs for a set time), and how many queue groups each
//! published message reaches.
//!
//! The scenario thread writes it at phase boundaries; the sampler reads it once a second. A
//! mutex is plenty for that: nobody on the message path touches it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

/// The current phase as the sampler sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseNow {
    /// `None` before the scenario opens its first phase.
    pub name: Option<String>,
    /// When the phase will end if it lasts a set time (`--time`, backlog's `--trouble-time`);
    /// `None` when it lasts until something happens (a drain, a message count).
    pub planned_end: Option<Instant>,
}

/// Shared between the scenario thread and the sampler.
#[derive(Debug)]
pub struct RunStatus {
    phase: Mutex<PhaseNow>,
    deliveries_per_publish: AtomicU64,
}

impl Default for RunStatus {
    fn default() -> Self {
        RunStatus {
            phase: Mutex::new(PhaseNow::default()),
            deliveries_per_publish: AtomicU64::new(1),
        }
    }
}

impl RunStatus {
    /// The scenario entered phase `name`; its end is not planned until `plan_end` says so.
    pub fn start_phase(&self, name: &str) {
        *self.lock() = PhaseNow {
            name: Some(name.to_string()),
            planned_end: None,
        };
    }

    /// The current phase will end at `end`.
    pub fn plan_end(&self, end: Instant) {
        self.lock().planned_end = Some(end);
    }

    pub fn phase(&self) -> PhaseNow {
        self.lock().clone()
    }

    /// Every message of the run reaches `groups` queue groups (fanout: one per queue), so
    /// consumers owe that many deliveries per publish. Every scenario gives all its producers
    /// the same groups, so one run-wide figure is exact.
    pub fn set_deliveries_per_publish(&self, groups: u64) {
        self.deliveries_per_publish.store(groups, Ordering::Relaxed);
    }

    pub fn deliveries_per_publish(&self) -> u64 {
        self.deliveries_per_publish.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, PhaseNow> {
        // A panic elsewhere must not take the progress line down with it: the data is a plain
        // value, valid whatever the panicking thread was doing.
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_phase_forgets_the_previous_plan() {
        let status = RunStatus::default();
        assert_eq!(status.phase(), PhaseNow::default());
        status.start_phase("publish");
        let end = Instant::now();
        status.plan_end(end);
        assert_eq!(status.phase().planned_end, Some(end));
        status.start_phase("drain");
        assert_eq!(
            status.phase(),
            PhaseNow {
                name: Some("drain".into()),
                planned_end: None
            }
        );
        assert_eq!(status.deliveries_per_publish(), 1);
    }
}
