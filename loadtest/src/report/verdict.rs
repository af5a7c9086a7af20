//! The one-line verdict printed at the end of a run, before the table: whether anything was
//! lost, then the few figures a reader looks for first.

use super::axis::{format_value, Unit};
use super::compare::group_thousands;
use super::model::Report;

/// `verdict: zero loss · 150k msg/s published · p99 deliver latency 2.1 ms · broker RSS peak
/// 75 MiB`, or `verdict: LOST 12 of 20,000 messages · …`.
pub fn verdict(report: &Report) -> String {
    let r = &report.results;
    let v = &r.verification;
    let mut parts = vec![if v.lost > 0 {
        format!(
            "LOST {} of {} messages",
            group_thousands(v.lost as i64),
            group_thousands(v.expected as i64)
        )
    } else if let Some(left) = v.left_queued {
        format!(
            "nothing lost (no consumers, {} left queued)",
            group_thousands(left as i64)
        )
    } else {
        "zero loss".to_string()
    }];
    if v.duplicates > 0 {
        parts.push(format!(
            "{} duplicates",
            group_thousands(v.duplicates as i64)
        ));
    }
    match report.errors.len() {
        0 => {}
        1 => parts.push("1 error".into()),
        n => parts.push(format!("{n} errors")),
    }
    let rate = |v: f64| format_value(v, Unit::Rate);
    if let Some(flood) = r.flood_rate_per_s {
        parts.push(format!("flood {}", rate(flood)));
        if let Some(drain) = r.drain_rate_per_s {
            parts.push(format!("drain {}", rate(drain)));
        }
    } else {
        if r.published > 0 {
            parts.push(format!("{} published", rate(r.publish_rate_per_s)));
        }
        if r.accepted > 0 {
            parts.push(format!("{} delivered", rate(r.deliver_rate_per_s)));
        }
    }
    let latencies = [
        ("deliver", &r.deliver_latency),
        ("confirm", &r.confirm_latency),
        ("connect", &r.connect_latency),
    ];
    if let Some((kind, summary)) = latencies
        .iter()
        .find_map(|(kind, s)| s.as_ref().map(|s| (kind, s)))
    {
        let p99 = format_value(summary.p99_us as f64, Unit::Micros);
        parts.push(format!("p99 {kind} latency {p99}"));
    }
    if let Some(kib) = r.broker_rss_max_kib {
        parts.push(format!(
            "broker RSS peak {}",
            format_value(kib as f64, Unit::Kib)
        ));
    }
    format!("verdict: {}", parts.join(" · "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::sample_report;

    #[test]
    fn verdict_says_loss_first_then_the_headline_figures() {
        let mut report = sample_report(150_000.0);
        report.results.broker_rss_max_kib = Some(75 * 1024);
        assert_eq!(
            verdict(&report),
            "verdict: zero loss · 150k msg/s published · 90k msg/s delivered · \
             p99 deliver latency 5 ms · broker RSS peak 75 MiB"
        );
        report.results.verification.lost = 12;
        report.results.verification.expected = 20_000;
        report.results.flood_rate_per_s = Some(153_846.0);
        report.results.drain_rate_per_s = Some(41_234.0);
        report.results.deliver_latency = None;
        report.errors.push("consumer 1 failed".into());
        assert_eq!(
            verdict(&report),
            "verdict: LOST 12 of 20,000 messages · 1 error · flood 154k msg/s · \
             drain 41.2k msg/s · broker RSS peak 75 MiB"
        );
        report.results.verification.lost = 0;
        report.results.verification.left_queued = Some(1000);
        assert!(verdict(&report).starts_with("verdict: nothing lost (no consumers, 1,000 left"));
    }
}
