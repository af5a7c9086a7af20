//! How a consumer treats its deliveries: healthy, slow, flaky, stalled or dropped. The backlog
//! scenario mixes these to recreate an incident; every other scenario uses healthy consumers
//! with an optional delay.

use std::time::Duration;

/// How a consumer settles (or fails to settle) what it receives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Failure {
    /// Accepts everything.
    None,
    /// Refuses `percent` % of deliveries at random and asks the broker to requeue them.
    Requeue {
        percent: u32,
        with: Refusal,
        seed: u64,
    },
    /// Never acks: holds up to its prefetch until its channel closes.
    NeverAck,
    /// Holds `after_held` deliveries unacked, then its socket is shut down without a close.
    DropConnection { after_held: usize },
}

/// Which method a flaky consumer refuses with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Nack,
    Reject,
}

/// A consumer's behaviour: a delay per delivery (a slow consumer) and a failure mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Behaviour {
    pub delay: Duration,
    pub failure: Failure,
}

impl Behaviour {
    pub fn healthy(delay: Duration) -> Behaviour {
        Behaviour {
            delay,
            failure: Failure::None,
        }
    }

    /// A short name for reports.
    pub fn label(&self) -> String {
        let failure = match self.failure {
            Failure::None => "healthy".to_string(),
            Failure::Requeue { percent, with, .. } => {
                format!("flaky ({percent}% {with:?} requeue)").to_lowercase()
            }
            Failure::NeverAck => "never acks".to_string(),
            Failure::DropConnection { after_held } => {
                format!("dropped after holding {after_held}")
            }
        };
        if self.delay.is_zero() {
            failure
        } else {
            format!("{failure}, {} µs per message", self.delay.as_micros())
        }
    }
}

/// SplitMix64: a tiny seeded generator, so a run's random failures can be replayed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next_u64() % 100 < u64::from(percent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_chance_is_roughly_fair() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let hits = (0..10_000).filter(|_| a.chance(20)).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
        assert_eq!((0..100).filter(|_| a.chance(0)).count(), 0);
    }

    #[test]
    fn labels_name_the_behaviour() {
        let flaky = Behaviour {
            delay: Duration::from_micros(500),
            failure: Failure::Requeue {
                percent: 10,
                with: Refusal::Nack,
                seed: 1,
            },
        };
        assert_eq!(
            flaky.label(),
            "flaky (10% nack requeue), 500 µs per message"
        );
        assert_eq!(Behaviour::healthy(Duration::ZERO).label(), "healthy");
    }
}
