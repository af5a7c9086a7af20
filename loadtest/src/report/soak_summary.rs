//! The soak's summary, for the terminal and the HTML page: what happened, then PASS or every
//! failure.

use std::fmt::Write;

use super::model::SoakResults;

/// The summary lines, ending with a newline.
pub fn text(soak: &SoakResults) -> String {
    let mut out = String::new();
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.0} ms"));
    let mib = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| format!("{} MiB", v / 1024));
    let _ = writeln!(out, "soak:");
    let _ = writeln!(
        out,
        "  kills {}, restarts {} (time to accept: median {}, max {})",
        soak.kills,
        soak.restarts,
        ms(soak.time_to_accept_median_ms),
        ms(soak.time_to_accept_max_ms)
    );
    let _ = writeln!(
        out,
        "  published {}, confirmed {}, committed {}, nacked {}",
        soak.published, soak.confirmed, soak.committed, soak.nacked
    );
    let _ = writeln!(
        out,
        "  consumed {} (redelivered {}), acked {} (proven on disk {}), refused {}, acked and delivered again {}",
        soak.consumed, soak.redelivered, soak.acked, soak.proven_acks, soak.refused, soak.acked_again
    );
    let _ = writeln!(
        out,
        "  crashed consumers {}, churned queues {}, dead-lettered {}, connections {}",
        soak.crashed_consumers, soak.churned_queues, soak.dead_lettered, soak.connections
    );
    let _ = writeln!(
        out,
        "  lost {}, acked returns {}, left after the clean restart {}",
        soak.lost,
        soak.acked_returns,
        soak.left_after_clean_restart
            .map_or_else(|| "-".to_string(), |n| n.to_string())
    );
    let _ = writeln!(
        out,
        "  broker max RSS {}, max open descriptors {}",
        mib(soak.rss_max_kib),
        soak.fds_max
            .map_or_else(|| "-".to_string(), |n| n.to_string())
    );
    if !soak.client_errors.is_empty() {
        let _ = writeln!(out, "  client errors:");
        for (kind, count) in &soak.client_errors {
            let _ = writeln!(out, "    {count:>6}  {kind}");
        }
    }
    if soak.failures.is_empty() {
        let _ = writeln!(out, "  PASS");
    } else {
        for failure in &soak.failures {
            let _ = writeln!(out, "  FAIL: {failure}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_spelled_out() {
        let mut soak = SoakResults {
            kills: 3,
            ..Default::default()
        };
        assert!(text(&soak).contains("PASS"));
        soak.failures
            .push("2 confirmed messages were never consumed".to_string());
        let shown = text(&soak);
        assert!(shown.contains("FAIL: 2 confirmed"), "{shown}");
        assert!(!shown.contains("PASS"));
    }
}
