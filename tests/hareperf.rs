//! hareperf against the real broker: the library runs small scenarios end to end and the
//! reports must prove that no message was lost, or, for declare runs, that every durable
//! metadata change was answered and counted in its curve.

mod common;

use hare_loadtest::cli::RunArgs;
use hare_loadtest::client::{AmqpUri, ClientError, Connection};
use hare_loadtest::report::compare;
use hare_loadtest::report::model::{MetadataChange, PhaseKind, Report};

/// An instant or rate of a report: present, finite and not negative.
fn finite(value: Option<f64>, what: &str) -> f64 {
    let value = value.unwrap_or_else(|| panic!("{what} is reported"));
    assert!(value.is_finite() && value >= 0.0, "{what} = {value}");
    value
}

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
            "--broker-pid",
            &broker.pid().to_string(),
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert!(report.passed());
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

    // Exact publishing and delivering times, from the workers' own clocks.
    let start = finite(r.publish_start_s, "publish start");
    let end = finite(r.publish_end_s, "publish end");
    let delivered = finite(r.deliver_end_s, "deliver end");
    assert!(start < end && end <= r.duration_s, "{start} {end}");
    assert!(
        start < delivered && delivered <= r.duration_s,
        "{delivered}"
    );
    assert!((r.publish_duration_s - (end - start)).abs() < 1e-9);
    assert!((r.publish_rate_per_s - 4000.0 / (end - start)).abs() < 1e-6);
    assert!((r.deliver_rate_per_s - 4000.0 / (delivered - start)).abs() < 1e-6);
    let publish = &report.phases[0];
    assert_eq!(publish.name, "publish");
    assert_eq!(publish.messages, 4000, "the publish phase counts confirms");
    assert!(
        (publish.end_s - end).abs() < 1e-9,
        "it ends with the last confirm"
    );
    assert_eq!(r.verification.left_queued, None, "the run had consumers");
    assert_eq!(r.flood_rate_per_s, None, "only backlog runs flood");
    // A run far shorter than the one-second sample still reads the broker's memory.
    assert!(r.broker_rss_start_kib.is_some_and(|k| k > 0));
    assert!(r.broker_rss_end_kib.is_some_and(|k| k > 0));
    assert!(r.broker_rss_max_kib >= r.broker_rss_end_kib);
    assert_eq!(r.queue_depth_end, Some(0));
    // --broker-pid alone: the /proc counters, and no perf (nor a complaint about it).
    let switches = r
        .broker_context_switches
        .expect("context switches with --broker-pid");
    assert!(
        switches > 0,
        "a broker that delivered 4000 messages slept at least once"
    );
    assert_eq!(r.broker_syscalls, None);
    assert_eq!(r.broker_perf_unavailable, None);
}

#[test]
fn one_per_write_run_loses_nothing_and_reports_the_broker_cost_per_message() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "throughput",
            "-C",
            "3000",
            "-r",
            "20000",
            "--one-per-write",
            "--broker-pid",
            &broker.pid().to_string(),
            "--broker-perf",
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert!(report.passed());
    assert!(report.parameters.one_per_write);
    let r = &report.results;
    assert_eq!((r.published, r.accepted), (3000, 3000));
    assert_eq!(r.verification.lost, 0);
    assert_eq!(r.verification.duplicates, 0);

    // Every figure per message is its count over the messages published.
    let cpu_s = finite(r.broker_cpu_s, "broker CPU");
    let cpu_us = finite(r.broker_cpu_us_per_message, "broker CPU per message");
    assert!((cpu_us - cpu_s * 1e6 / 3000.0).abs() < 1e-6, "{cpu_us}");
    let switches = r.broker_context_switches.expect("context switches") as f64;
    assert!(switches > 0.0);
    let per_message = finite(
        r.broker_context_switches_per_message,
        "switches per message",
    );
    assert!((per_message - switches / 3000.0).abs() < 1e-9);

    // perf either counted or says why not; the run passes either way.
    match (&r.broker_perf_unavailable, r.broker_syscalls) {
        (None, Some(syscalls)) => {
            let io_uring_enter = r
                .broker_io_uring_enter
                .expect("io_uring_enter with syscalls");
            assert!(
                syscalls >= io_uring_enter && io_uring_enter > 0,
                "{syscalls} {io_uring_enter}"
            );
            let per_message = finite(r.broker_syscalls_per_message, "syscalls per message");
            assert!((per_message - syscalls as f64 / 3000.0).abs() < 1e-9);
        }
        (Some(reason), None) => assert!(!reason.is_empty()),
        other => panic!("perf counts and a reason at once: {other:?}"),
    }
    let table = compare::table(&[("run".into(), report.clone())]);
    assert!(
        table.contains("| broker context switches per message |"),
        "{table}"
    );
}

#[test]
fn run_without_consumers_leaves_the_messages_queued_and_passes() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "throughput",
            "-x",
            "1",
            "-y",
            "0",
            "-C",
            "3000",
            "-s",
            "100",
            "-f",
            "-c",
            "200",
            "--keep-queues",
            "--broker-pid",
            &broker.pid().to_string(),
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let r = &report.results;
    let v = &r.verification;
    assert_eq!(r.confirmed, 3000);
    assert_eq!(v.lost, 0, "nobody consumed, so nothing counts as lost");
    assert_eq!(v.left_queued, Some(3000));
    assert_eq!(r.queue_depth_end, Some(3000));
    assert_eq!(r.queue_depth_max, Some(3000));
    assert!(report.passed(), "hareperf exits 0");
    assert!(
        r.broker_rss_end_kib.is_some_and(|k| k > 0),
        "the RSS with the backlog in place"
    );
    assert!(r.broker_rss_max_kib.is_some());
    let table = compare::table(&[("a".into(), report.clone())]);
    assert!(
        table.contains("| left queued (no consumers) | 3,000 |"),
        "{table}"
    );
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
            "--depth-interval-ms",
            "20",
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

    // Exact phase timings: the flood ends with its last confirm, the drain with the last
    // message accepted.
    let flood_end = finite(r.flood_end_s, "flood end");
    let drain_end = finite(r.drain_end_s, "drain end");
    let unheld_end = finite(r.drain_unheld_end_s, "drain end, held aside");
    assert!(flood_end <= unheld_end, "{flood_end} {unheld_end}");
    assert!(unheld_end <= drain_end, "{unheld_end} {drain_end}");
    assert!(drain_end <= r.duration_s);
    assert!(finite(r.flood_rate_per_s, "flood rate") > 0.0);
    let drain_rate = finite(r.drain_rate_per_s, "drain rate");
    assert!(drain_rate > 0.0);
    assert!(finite(r.drain_unheld_rate_per_s, "drain rate, held aside") >= drain_rate);
    let [flood, trouble, recovery] = &report.phases[..] else {
        panic!("three phases");
    };
    assert!((flood.end_s - flood_end).abs() < 1e-9);
    assert_eq!(flood.messages, 3000, "every flood message was confirmed");
    assert!(flood.rate_per_s > 0.0 && flood.rate_per_s.is_finite());
    assert_eq!(flood.queue_depth_end, Some(3000), "polled at the boundary");
    assert_eq!(trouble.queue_depth_start, Some(3000));
    assert!(flood.end_s <= trouble.start_s && trouble.end_s <= recovery.start_s);
    assert!((recovery.end_s - drain_end).abs() < 1e-9);
    assert_eq!(
        trouble.messages + recovery.messages,
        r.accepted,
        "consumers only ran in the trouble and recovery phases"
    );
    assert_eq!(r.queue_depth_max, Some(3000));
    assert!(
        report.series.queue_depth_polls.len() >= 2,
        "polled every 20 ms"
    );

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

/// Whether `queue` exists, by a passive declare on a connection of its own.
fn queue_exists(broker: &common::Broker, queue: &str) -> bool {
    let uri = AmqpUri::parse(&broker.url()).expect("the harness's URL is valid");
    let mut connection = Connection::open(&uri, "test").expect("the broker accepts connections");
    connection
        .open_channel(1)
        .expect("a new connection opens channel 1");
    match connection.queue_message_count(1, queue) {
        Ok(_) => true,
        Err(ClientError::ChannelClosed { code: 404, .. }) => false,
        Err(e) => panic!("passive declare of {queue:?}: {e}"),
    }
}

#[test]
fn declare_run_has_a_curve_per_change_with_every_window_counted_and_cleans_up() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "declare",
            "--declare-queues",
            "70",
            "--declare-window",
            "20",
            "--declare-bindings-per-queue",
            "2",
            "--declare-channels",
            "2",
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert!(report.passed());
    let declare = report.results.declare.as_ref().expect("declare results");
    assert!(declare.name_prefix.starts_with("hareperf-declare-"));
    assert_eq!(declare.connection_count, 2);
    let changes: Vec<MetadataChange> = declare.curves.iter().map(|c| c.change).collect();
    assert_eq!(
        changes,
        MetadataChange::ALL,
        "declare, bind, delete, in order"
    );
    // A binding window covers the bindings of --declare-window queues; the last window of
    // each curve holds what is left.
    for (change, requested, per_window) in [
        (MetadataChange::QueueDeclare, 70, 20),
        (MetadataChange::QueueBind, 140, 40),
        (MetadataChange::QueueDelete, 70, 20),
    ] {
        let curve = declare.curve(change).unwrap();
        let rates = &curve.rates;
        assert_eq!(curve.requested, requested, "{change:?}");
        assert_eq!(rates.count, requested, "{change:?}: every change answered");
        assert_eq!(rates.per_window, per_window);
        let counts: Vec<u64> = rates.windows.iter().map(|w| w.count).collect();
        let half = per_window / 2;
        assert_eq!(
            counts,
            [per_window, per_window, per_window, half],
            "{change:?}"
        );
        let cumulative: Vec<u64> = rates.windows.iter().map(|w| w.count_cumulative).collect();
        assert_eq!(
            cumulative,
            [per_window, 2 * per_window, 3 * per_window, requested]
        );
        let indexes: Vec<u64> = rates.windows.iter().map(|w| w.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3]);
        let durations: f64 = rates.windows.iter().map(|w| w.duration_s).sum();
        assert!((durations - (rates.end_s - rates.start_s)).abs() < 1e-6);
        assert!(rates
            .windows
            .iter()
            .all(|w| w.rate_per_s > 0.0 && w.rate_per_s.is_finite()));
        let first = finite(rates.first_window_rate_per_s, "first window rate");
        let last = finite(rates.last_window_rate_per_s, "last window rate");
        let ratio = finite(rates.last_to_first_ratio, "last ÷ first");
        assert!((ratio - last / first).abs() < 1e-9);
        assert!(rates.end_s <= report.results.duration_s);
    }
    let phases: Vec<(&str, PhaseKind, u64)> = report
        .phases
        .iter()
        .map(|p| (p.name.as_str(), p.kind, p.messages))
        .collect();
    assert_eq!(
        phases,
        [
            ("queues", PhaseKind::Metadata, 70),
            ("bindings", PhaseKind::Metadata, 140),
            ("delete", PhaseKind::Metadata, 70),
        ]
    );
    for (phase, curve) in report.phases.iter().zip(&declare.curves) {
        assert!(
            (phase.end_s - curve.rates.end_s).abs() < 1e-9,
            "a phase ends with its last answer"
        );
    }
    assert!(!queue_exists(
        &broker,
        &format!("{}-0", declare.name_prefix)
    ));
    assert!(!queue_exists(
        &broker,
        &format!("{}-69", declare.name_prefix)
    ));
    let named = [("a".to_string(), report.clone())];
    let table = compare::table(&named);
    assert!(
        table.contains("| queue.bind, last ÷ first window |"),
        "{table}"
    );
    let curves = compare::curves(&named);
    assert!(curves.contains("| 3 | 121–140 |"), "{curves}");
}

#[test]
fn declare_run_with_keep_queues_leaves_them_for_a_restart() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "declare",
            "--declare-queues",
            "20",
            "--declare-window",
            "10",
            "--keep-queues",
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let declare = report.results.declare.as_ref().expect("declare results");
    let changes: Vec<MetadataChange> = declare.curves.iter().map(|c| c.change).collect();
    assert_eq!(changes, [MetadataChange::QueueDeclare], "nothing deleted");
    let last = format!("{}-19", declare.name_prefix);
    let broker = broker.restart();
    assert!(
        queue_exists(&broker, &last),
        "durable queues survive a restart"
    );
}

#[test]
fn declare_run_stops_at_the_first_refused_declare_and_says_why() {
    let broker = common::Broker::start(2);
    // Queue names under the reserved `amq.` prefix are refused with 403.
    let report = run(
        &broker,
        &[
            "declare",
            "--queue",
            "amq.refused",
            "--declare-queues",
            "50",
            "--declare-channels",
            "2",
        ],
    );
    assert!(!report.passed(), "a refused declare fails the run");
    assert!(!report.errors.is_empty());
    for error in &report.errors {
        assert!(
            error.contains("queue.declare connection")
                && error.contains("declaring durable queue \"amq.refused-declare-")
                && error.contains("403"),
            "{error}"
        );
    }
    let declare = report.results.declare.as_ref().expect("declare results");
    let [curve] = &declare.curves[..] else {
        panic!("only the declare phase ran: {:?}", declare.curves);
    };
    assert_eq!(curve.requested, 50);
    assert_eq!(
        curve.rates.count, 0,
        "each connection stopped at its first refusal"
    );
    assert_eq!(curve.rates.first_window_rate_per_s, None);
}

#[test]
fn retry_run_acks_every_message_after_one_trip_through_the_retry_queue() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "retry",
            "-x",
            "2",
            "-y",
            "2",
            "--retry-messages",
            "200",
            "--retry-ttl-ms",
            "200",
            "--broker-pid",
            &broker.pid().to_string(),
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert!(report.passed());
    let r = &report.results;
    let v = &r.verification;
    assert_eq!(r.confirmed, 200);
    assert_eq!(v.expected, 200);
    assert_eq!(v.lost, 0, "lost e.g. {:?}", v.lost_sample);
    assert_eq!(v.duplicates, 0);
    let retry = r.retry.as_ref().expect("retry results");
    assert!(retry.work_queue.ends_with("-retry-work"));
    assert_eq!(retry.acked, 200);
    assert_eq!(retry.refused, 200, "every message refused once");
    assert_eq!(retry.deliveries, 400);
    assert_eq!(retry.deliveries_histogram, vec![(2, 200)]);
    assert_eq!(retry.off_plan, 0, "x-death counted every refusal");
    assert_eq!(retry.deliveries_per_message, Some(2.0));
    assert!(finite(retry.acked_rate_per_s, "acked rate") > 0.0);
    let p50 = r.deliver_latency.as_ref().expect("publish → ack").p50_us;
    assert!(p50 >= 200_000, "each message waited the TTL: p50 {p50} µs");
    let phases: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["publish", "retry"]);
    assert!(!queue_exists(&broker, &retry.work_queue), "cleaned up");
    assert!(!queue_exists(&broker, &retry.retry_queue), "cleaned up");
    let named = [("a".to_string(), report.clone())];
    let table = compare::table(&named);
    assert!(
        table.contains("| retry: deliveries per message | 2.000 |"),
        "{table}"
    );
    assert!(
        compare::details(&named).contains("| 2 | 200 |"),
        "{}",
        compare::details(&named)
    );
}

#[test]
fn retry_run_with_a_partial_share_refuses_only_the_picked_messages() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "retry",
            "--retry-messages",
            "300",
            "--retry-ttl-ms",
            "50",
            "--retry-percent",
            "50",
            "--retry-times",
            "2",
            "--retry-with",
            "nack",
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let retry = report.results.retry.as_ref().expect("retry results");
    assert_eq!(report.results.verification.lost, 0);
    assert_eq!(retry.acked, 300);
    assert_eq!(retry.off_plan, 0);
    let once = retry
        .deliveries_histogram
        .iter()
        .find(|&&(k, _)| k == 1)
        .map_or(0, |&(_, n)| n);
    let thrice = retry
        .deliveries_histogram
        .iter()
        .find(|&&(k, _)| k == 3)
        .map_or(0, |&(_, n)| n);
    assert_eq!(once + thrice, 300, "{:?}", retry.deliveries_histogram);
    assert!((100..200).contains(&thrice), "{thrice} picked of 300");
    assert_eq!(retry.refused, 2 * thrice);
}

#[test]
fn delayed_ttl_dlx_run_fires_every_message_on_time() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "delayed",
            "--delayed-messages",
            "200",
            "--delay-window-s",
            "2",
            "--broker-pid",
            &broker.pid().to_string(),
        ],
    );
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    assert!(report.passed());
    let r = &report.results;
    assert_eq!(r.confirmed, 200);
    assert_eq!(r.verification.lost, 0);
    assert_eq!(r.verification.duplicates, 0);
    let delayed = r.delayed.as_ref().expect("delayed results");
    assert_eq!(delayed.mode, "ttl-dlx");
    assert_eq!(delayed.fired, 200);
    assert_eq!(delayed.early, 0, "nothing fires before its time");
    let lateness = delayed.lateness.as_ref().expect("lateness");
    assert_eq!(lateness.count, 200);
    // Hare expires each message on time wherever it is in the queue; a loaded test machine
    // gets a generous bound.
    assert!(
        lateness.p50_us < 500_000,
        "p50 lateness {} µs",
        lateness.p50_us
    );
    assert!(delayed.broker_rss_before_kib.is_some());
    assert!(delayed.broker_rss_published_kib.is_some());
    assert!(delayed.broker_rss_per_message_bytes.is_some());
    let phases: Vec<&str> = report.phases.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(phases, ["publish", "fire"]);
    assert!(!queue_exists(&broker, &delayed.holding), "cleaned up");
    let named = [("a".to_string(), report.clone())];
    assert!(compare::table(&named).contains("| delayed: lateness p99 |"));
    assert!(compare::details(&named).contains("lateness percentiles"));
}

#[test]
fn delayed_plugin_run_uses_the_delayed_message_exchange() {
    let broker = common::Broker::start(2);
    let report = run(
        &broker,
        &[
            "delayed",
            "--delay-mode",
            "plugin",
            "--delayed-messages",
            "200",
            "--delay-window-s",
            "2",
        ],
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let delayed = report.results.delayed.as_ref().expect("delayed results");
    assert_eq!(delayed.fired, 200);
    assert_eq!(report.results.verification.lost, 0);
}
