//! hareperf against the real broker: the library runs small scenarios end to end and the
//! reports must prove that no message was lost.

mod common;

use hare_loadtest::cli::RunArgs;
use hare_loadtest::report::compare;
use hare_loadtest::report::model::Report;

fn run(broker: &common::Broker, args: &[&str]) -> Report {
    let url = broker.url();
    let mut all = args.to_vec();
    all.extend(["--uri", &url, "--quiet", "--drain-timeout", "5"]);
    let args = RunArgs::parse_from(all).expect("valid hareperf arguments");
    hare_loadtest::scenario::run(args).expect("hareperf reaches the broker")
}

#[test]
fn throughput_run_delivers_every_message_once() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "throughput",
            "-x",
            "2",
            "-y",
            "2",
            "-C",
            "2000",
            "-c",
            "100",
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let r = &report.results;
    assert_eq!(r.published, 4000);
    assert_eq!(r.confirmed, 4000);
    assert_eq!(r.accepted, 4000);
    assert_eq!(r.verification.expected, 4000);
    assert_eq!(r.verification.lost, 0);
    assert_eq!(r.verification.duplicates, 0);
    assert!(r.verification.drained);
    assert_eq!(r.deliver_latency.as_ref().map(|l| l.count), Some(4000));
    assert_eq!(r.confirm_latency.as_ref().map(|l| l.count), Some(4000));
    assert_eq!(report.broker.label, "Hare 0.1.0");
}

#[test]
fn backlog_incident_loses_nothing_and_redelivers_what_the_dropped_consumer_held() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "backlog",
            "-x",
            "3",
            "--backlog-messages",
            "3000",
            "--trouble-time",
            "2",
            "--slow-delay-us",
            "1000",
            "--trouble-prefetch",
            "20",
            "--recovery-consumers",
            "2",
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let r = &report.results;
    let v = &r.verification;
    assert_eq!(r.published, 3000);
    assert_eq!(r.confirmed, 3000);
    assert_eq!(v.expected, 3000);
    assert_eq!(v.lost, 0, "lost e.g. {:?}", v.lost_sample);
    assert_eq!(v.received_unique, 3000);
    assert!(v.drained);
    assert_eq!(v.dropped_held, 20, "the dropped consumer held its prefetch");
    assert_eq!(v.dropped_returned_redelivered, v.dropped_held);
    assert_eq!(v.stalled_held, 20, "the stalled consumer held its prefetch");
    assert_eq!(v.stalled_returned_redelivered, v.stalled_held);
    assert!(r.refused > 0, "flaky consumers refused some deliveries");
    assert!(r.redelivered_deliveries >= r.refused + 40);
    let phases: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["flood", "trouble", "recovery"]);
    assert!(report.consumers.iter().any(|c| c.dropped));

    // The JSON report reads back as written, and compare tabulates it against itself.
    let dir = common::test_dir().join(format!("hareperf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("backlog.json");
    report.write_json(&path).unwrap();
    let read = Report::read_json(&path).unwrap();
    assert_eq!(read.results, report.results);
    assert_eq!(read.series, report.series);
    assert_eq!(read.phases, report.phases);
    let table = compare::table(&[("a".into(), report), ("b".into(), read)]);
    assert!(table.contains("| lost | 0 | 0 | – |"), "{table}");
    assert!(
        table.contains("| published | 3,000 | 3,000 | 1.00× |"),
        "{table}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
