//! What hareperf measures and how.
//!
//! - `counters`: run-wide atomic totals, added to per batch.
//! - `latency`: HdrHistogram latencies and their percentile summary.
//! - `rate_windows`: rates over consecutive windows of answers (the declare scenario's curves).
//! - `received_ids`: per-consumer bitmaps of accepted message ids (loss and duplicate proof).
//! - `run_status`: the scenario's current phase and its planned end, for the progress line.
//! - `sampler`: the once-a-second thread behind every time series and the progress line.
//! - `timeline`: cumulative counts every 10 ms, for rates of runs shorter than a second.
//! - `proc_stat`: CPU seconds and RSS from `/proc`, for hareperf and the broker.
//! - `context_switches`: a process's context switches, summed over its threads in `/proc`.
//! - `perf_stat`: the broker's syscalls and `io_uring_enter` calls, counted by `perf stat`.
//! - `machine`: cores, CPU model, kernel and memory for the report.
//! - `progress`: the stderr progress line.

pub mod context_switches;
pub mod counters;
pub mod latency;
pub mod machine;
pub mod perf_stat;
pub mod proc_stat;
pub mod progress;
pub mod rate_windows;
pub mod received_ids;
pub mod run_status;
pub mod sampler;
pub mod timeline;
