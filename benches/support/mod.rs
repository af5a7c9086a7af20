//! What every root-package bench shares: the criterion settings, including the smoke mode.

use std::time::Duration;

use criterion::Criterion;

/// Criterion's defaults for a real run. With `HARE_BENCH_SMOKE=1`, tiny settings, so CI keeps
/// each bench compiling and running without timing anything.
pub fn config() -> Criterion {
    if std::env::var_os("HARE_BENCH_SMOKE").is_some() {
        Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(10))
            .measurement_time(Duration::from_millis(50))
    } else {
        Criterion::default()
    }
}
