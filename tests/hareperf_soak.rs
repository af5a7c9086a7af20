//! `hareperf run soak` against the real broker, which hareperf itself starts, kills with
//! SIGKILL every few seconds and starts again: a short soak must lose no confirmed message,
//! bring back no proven ack, and really kill the broker; a broker that forgets its data at
//! every start must fail the soak, with the losses in the report.

mod common;

use std::path::Path;

use hare_loadtest::cli::RunArgs;
use hare_loadtest::report::model::{Report, SoakResults};

/// The command that starts the debug broker on fixed free ports, with its data in `data_dir`.
fn broker_command(data_dir: &Path, listen: common::Listen) -> String {
    format!(
        "{} --listen {} --management-listen {} --metrics-listen {} --data-dir {} --shards 2 --segment-size-bytes 1048576",
        env!("CARGO_BIN_EXE_hare"),
        listen.amqp,
        listen.management,
        listen.metrics,
        data_dir.display()
    )
}

fn soak(listen: common::Listen, restart_cmd: &str, extra: &[&str]) -> (Report, SoakResults) {
    let uri = format!("amqp://guest:guest@{}/%2f", listen.amqp);
    let mut all = vec![
        "soak",
        "--uri",
        &uri,
        "--quiet",
        "--restart-cmd",
        restart_cmd,
        "--consumers",
        "2",
        "--seed",
        "7",
    ];
    all.extend(extra);
    let args = RunArgs::parse_from(all).expect("valid hareperf arguments");
    let report = hare_loadtest::scenario::run(args).expect("hareperf starts the broker");
    let soak = report.results.soak.clone().expect("a soak report");
    (report, soak)
}

#[test]
fn soak_with_kills_every_three_seconds_loses_nothing_and_no_proven_ack_returns() {
    let data_dir = common::fresh_data_dir();
    let listen = common::Listen::free();
    let command = broker_command(&data_dir, listen);
    let (report, soak) = soak(listen, &command, &["--time", "25", "--kill-every", "3"]);
    let shown = hare_loadtest::report::soak_summary::text(&soak);
    assert!(report.passed(), "{shown}\nerrors: {:?}", report.errors);
    assert!(soak.failures.is_empty(), "{shown}");
    assert!(soak.kills >= 3, "{shown}");
    // Every kill is followed by a start that reached AMQP, and the clean restart at the end.
    assert_eq!(soak.restarts, soak.kills + 1, "{shown}");
    assert_eq!((soak.lost, soak.acked_returns), (0, 0), "{shown}");
    assert!(soak.drained, "{shown}");
    assert_eq!(soak.left_after_clean_restart, Some(0), "{shown}");
    assert!(soak.confirmed > 100 && soak.committed > 10, "{shown}");
    assert!(soak.proven_acks > 100, "{shown}");
    assert!(soak.refused > 0 && soak.crashed_consumers > 0, "{shown}");
    assert!(soak.churned_queues > 0 && soak.dead_lettered > 0, "{shown}");
    assert!(soak.rss_max_kib.is_some_and(|kib| kib > 0), "{shown}");
    assert!(soak.fds_max.is_some_and(|fds| fds > 0), "{shown}");
    // The kills were seen by the clients.
    assert!(!soak.client_errors.is_empty(), "{shown}");
    let page = hare_loadtest::report::html::render(&report).expect("HTML page");
    assert!(page.contains("soak passed"), "{page}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn soak_of_a_broker_that_forgets_its_data_reports_the_losses() {
    let data_dir = common::fresh_data_dir();
    std::fs::create_dir_all(&data_dir).expect("data directory");
    let listen = common::Listen::free();
    // Wipes the broker's data before every start: whatever was confirmed before a kill is gone.
    let script = data_dir.join("forgetful.sh");
    let broker_data = data_dir.join("data");
    std::fs::write(
        &script,
        format!(
            "rm -rf {}\nexec {}\n",
            broker_data.display(),
            broker_command(&broker_data, listen)
        ),
    )
    .expect("script");
    let command = format!("sh {}", script.display());
    let (report, soak) = soak(
        listen,
        &command,
        &["--time", "8", "--kill-every", "2", "--drain-timeout", "3"],
    );
    let shown = hare_loadtest::report::soak_summary::text(&soak);
    assert!(!report.passed(), "{shown}");
    assert!(soak.kills >= 1, "{shown}");
    assert!(soak.lost > 0, "{shown}");
    assert!(!soak.lost_sample.is_empty(), "{shown}");
    assert!(
        soak.failures
            .iter()
            .any(|f| f.contains("confirmed messages were never consumed")),
        "{shown}"
    );
    let page = hare_loadtest::report::html::render(&report).expect("HTML page");
    assert!(page.contains("soak failed: "), "{page}");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn soak_whose_broker_cannot_restart_stops_and_says_why() {
    let data_dir = common::fresh_data_dir();
    std::fs::create_dir_all(&data_dir).expect("data directory");
    let listen = common::Listen::free();
    // Starts the broker once; every later start fails at once, as a broker on a full disk does.
    let script = data_dir.join("once.sh");
    let started = data_dir.join("started");
    std::fs::write(
        &script,
        format!(
            "if [ -e {started} ]; then echo 'refusing to start again' >&2; exit 3; fi\ntouch {started}\nexec {}\n",
            broker_command(&data_dir.join("data"), listen),
            started = started.display(),
        ),
    )
    .expect("script");
    let log = data_dir.join("broker.log");
    let command = format!("sh {}", script.display());
    let log_arg = log.display().to_string();
    let (report, soak) = soak(
        listen,
        &command,
        &[
            "--time",
            "30",
            "--kill-every",
            "1",
            "--broker-log",
            &log_arg,
        ],
    );
    let shown = hare_loadtest::report::soak_summary::text(&soak);
    assert!(!report.passed(), "{shown}");
    assert_eq!((soak.kills, soak.restarts), (1, 0), "{shown}");
    assert!(
        soak.failures.iter().any(|f| f.contains("restart 1 failed")
            && f.contains("exit status: 3")
            && f.contains("refusing to start again")),
        "{shown}"
    );
    // The soak stopped at the failure instead of running its 30 s.
    assert!(
        report.results.duration_s < 25.0,
        "{}",
        report.results.duration_s
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
