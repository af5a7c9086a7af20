//! The soak's main-thread loop: kills and restarts the broker on a seeded, jittered schedule
//! and samples its resident memory and descriptors every second, per broker process.

use std::time::{Duration, Instant};

use crate::client::AmqpUri;
use crate::worker::consumer_behaviour::Rng;

use super::broker::{usage, Broker, Usage};

/// How often the broker's memory and descriptors are read.
const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// Kills, restarts and readings so far.
#[derive(Debug)]
pub struct Chaos {
    pub broker: Option<Broker>,
    /// The pid to sample without `--restart-cmd` (`--broker-pid`).
    fixed_pid: Option<u32>,
    kill_every: Duration,
    rng: Rng,
    next_kill: Option<Instant>,
    next_sample: Instant,
    pub kills: u64,
    /// Time to accept of every start after the first.
    pub restart_times: Vec<Duration>,
    /// The largest reading of each broker process, in start order.
    pub per_start: Vec<Usage>,
    /// Set when a restart failed: the broker is down for good.
    pub restart_failure: Option<String>,
}

impl Chaos {
    /// `broker` has been started once already (or is `None`: no kills).
    pub fn new(
        broker: Option<Broker>,
        fixed_pid: Option<u32>,
        kill_every_s: f64,
        seed: u64,
    ) -> Chaos {
        let mut chaos = Chaos {
            broker,
            fixed_pid,
            kill_every: Duration::from_secs_f64(kill_every_s.max(0.1)),
            rng: Rng::new(seed),
            next_kill: None,
            next_sample: Instant::now(),
            kills: 0,
            restart_times: Vec::new(),
            per_start: vec![Usage::default()],
            restart_failure: None,
        };
        chaos.schedule_kill();
        chaos
    }

    fn schedule_kill(&mut self) {
        if self.broker.is_none() {
            return;
        }
        // Uniform in [0.5, 1.5) times the mean, in thousandths.
        let factor = 0.5 + (self.rng.next_u64() % 1000) as f64 / 1000.0;
        self.next_kill = Some(Instant::now() + self.kill_every.mul_f64(factor));
    }

    fn pid(&self) -> Option<u32> {
        self.broker.as_ref().map_or(self.fixed_pid, Broker::pid)
    }

    /// Samples and kills as due until `until`, or until `done` says stop; with `kills` false
    /// it only samples.
    pub fn run_until(
        &mut self,
        uri: &AmqpUri,
        until: Instant,
        kills: bool,
        mut done: impl FnMut() -> bool,
    ) {
        while Instant::now() < until && self.restart_failure.is_none() && !done() {
            let now = Instant::now();
            if now >= self.next_sample {
                self.sample();
                self.next_sample = now + SAMPLE_INTERVAL;
            }
            if kills && self.next_kill.is_some_and(|at| now >= at) {
                self.kill_and_restart(uri);
                self.schedule_kill();
            }
            let mut wake = self.next_sample.min(until);
            if kills {
                wake = self.next_kill.map_or(wake, |at| wake.min(at));
            }
            std::thread::sleep(
                wake.saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(100)),
            );
        }
    }

    /// Reads the broker's memory and descriptors into the current start's maximum.
    pub fn sample(&mut self) {
        let Some(reading) = self.pid().and_then(usage) else {
            return;
        };
        if let Some(max) = self.per_start.last_mut() {
            max.rss_kib = max.rss_kib.max(reading.rss_kib);
            max.fds = max.fds.max(reading.fds);
        }
    }

    /// SIGKILL, then start again at once and wait for AMQP.
    fn kill_and_restart(&mut self, uri: &AmqpUri) {
        self.sample();
        let Some(broker) = self.broker.as_mut() else {
            return;
        };
        if let Err(e) = broker.kill() {
            self.restart_failure = Some(format!("killing the broker: {e:#}"));
            return;
        }
        self.kills += 1;
        self.restart(uri);
    }

    /// Starts the broker after a kill or stop, recording the time to accept.
    pub fn restart(&mut self, uri: &AmqpUri) {
        let Some(broker) = self.broker.as_mut() else {
            return;
        };
        match broker.start(uri) {
            Ok(took) => {
                self.restart_times.push(took);
                self.per_start.push(Usage::default());
            }
            Err(e) => {
                self.restart_failure = Some(format!(
                    "restart {} failed: {e:#}",
                    self.restart_times.len() + 1
                ));
            }
        }
    }
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => None,
        _ if !n.is_multiple_of(2) => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Steady growth across starts: with at least `GROWTH_STARTS_MIN` starts, the median of the
/// last third's maxima above the first third's by more than `percent`. Returns both medians
/// when it grew.
pub fn grew(per_start: &[u64], percent: u64) -> Option<(f64, f64)> {
    if per_start.len() < GROWTH_STARTS_MIN {
        return None;
    }
    let third = per_start.len() / 3;
    let as_f64 = |s: &[u64]| s.iter().map(|&v| v as f64).collect::<Vec<_>>();
    let first = median(&as_f64(&per_start[..third]))?;
    let last = median(&as_f64(&per_start[per_start.len() - third..]))?;
    (last > first * (1.0 + percent as f64 / 100.0)).then_some((first, last))
}

/// Fewest broker starts the growth check needs.
pub const GROWTH_STARTS_MIN: usize = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn growth_needs_six_starts_and_a_real_rise() {
        assert_eq!(grew(&[1, 2, 3, 4, 5], 100), None);
        assert_eq!(grew(&[100, 110, 90, 105, 120, 100], 100), None);
        assert_eq!(
            grew(&[100, 100, 150, 180, 250, 300], 100),
            Some((100.0, 275.0))
        );
    }
}
