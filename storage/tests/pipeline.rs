//! Pipelined commits: a round is written and synced while the previous round's fdatasync is in
//! flight, yet durability is reported in round order. A held-back fdatasync (the fault
//! injector's `delay_fdatasync`) keeps one round in flight while the next one completes.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use hare_storage::{
    FaultInjector, Log, Lsn, RecordLocation, SegmentId, StorageError, COMMITS_IN_FLIGHT_MAX,
};

// The tests keep two rounds in flight.
const _: () = assert!(COMMITS_IN_FLIGHT_MAX >= 2);

/// How long the held fdatasync waits: far longer than a later round's write and fdatasync.
const HOLD: Duration = Duration::from_millis(1000);
const EVENTUALLY: Duration = Duration::from_secs(10);
/// Records per round in these tests.
const ROUND_RECORDS: u64 = 10;
const PAYLOAD_BYTES: usize = 300;

/// Holds back (and optionally fails) the next commit fdatasync of segment 1 once armed.
#[derive(Default)]
struct HeldSync {
    /// `Some(fails)`: the next fdatasync of segment 1 is held, and fails if `fails`.
    armed: Cell<Option<bool>>,
    /// Set between `before_fdatasync` and `delay_fdatasync` of the held fdatasync.
    holding: Cell<bool>,
    /// The held fdatasync was issued by the committer.
    held: Cell<bool>,
}

impl FaultInjector for HeldSync {
    fn before_write(&self, _segment: SegmentId, _offset: u64, _len: usize) -> Option<io::Error> {
        None
    }

    fn before_fdatasync(&self, segment: SegmentId) -> Option<io::Error> {
        if segment != SegmentId(1) {
            return None;
        }
        let fails = self.armed.take()?;
        self.holding.set(true);
        self.held.set(true);
        fails.then(|| io::Error::from_raw_os_error(libc::EIO))
    }

    fn delay_fdatasync(&self, _segment: SegmentId) -> Option<Duration> {
        self.holding.take().then_some(HOLD)
    }
}

/// Appends the next round of records (record `n` has LSN `n + 1` and payload `payload(n)`) and
/// spawns a waiter per record that logs its LSN (or, as `Err`, its LSN on an error) when
/// `wait_durable` resolves. Returns the records' locations.
fn append_round(
    log: &Rc<Log>,
    woken: &Rc<RefCell<Vec<Result<Lsn, Lsn>>>>,
    next: &Cell<u64>,
) -> Vec<(Lsn, RecordLocation)> {
    let mut placed = Vec::new();
    for _ in 0..ROUND_RECORDS {
        let n = next.get();
        next.set(n + 1);
        let (lsn, location) = log.append(1, &payload(n, PAYLOAD_BYTES)).unwrap();
        assert_eq!(lsn, Lsn(n + 1));
        let (log, woken) = (log.clone(), woken.clone());
        glommio::spawn_local(async move {
            let outcome = log.wait_durable(lsn).await.map(|()| lsn).map_err(|_| lsn);
            woken.borrow_mut().push(outcome);
        })
        .detach();
        placed.push((lsn, location));
    }
    placed
}

/// Reads every placed record back and checks its payload.
async fn read_back(log: &Log, placed: &[(Lsn, RecordLocation)]) {
    let locations: Vec<RecordLocation> = placed.iter().map(|(_, l)| *l).collect();
    let payloads = log.read_many(&locations).await.unwrap();
    for ((lsn, _), bytes) in placed.iter().zip(payloads) {
        assert_eq!(
            &bytes[..],
            &payload(lsn.0 - 1, PAYLOAD_BYTES)[..],
            "lsn {}",
            lsn.0
        );
    }
}

/// Opens a log with `faults`, makes one record durable (so segment 1 exists), then arms it.
async fn open_armed(dir: &std::path::Path, faults: &Rc<HeldSync>, fails: bool) -> Rc<Log> {
    let mut config = config(dir);
    config.faults = Some(faults.clone() as Rc<dyn FaultInjector>);
    let (log, _, _) = open_collect(config).await.unwrap();
    let (lsn, _) = log.append(1, &payload(0, PAYLOAD_BYTES)).unwrap();
    log.wait_durable(lsn).await.unwrap();
    faults.armed.set(Some(fails));
    Rc::new(log)
}

#[test]
fn a_round_synced_first_is_reported_only_after_the_earlier_one() {
    let dir = test_dir("pipeline_in_order");
    run(async move {
        let faults = Rc::new(HeldSync::default());
        let log = open_armed(&dir, &faults, false).await;
        let observed = Rc::new(RefCell::new(Vec::new()));
        glommio::spawn_local({
            let (log, observed) = (log.clone(), observed.clone());
            async move {
                // Record 1, then rounds A, B and C.
                let last = Lsn(1 + 3 * ROUND_RECORDS);
                while let Ok(lsn) = log.durable_changed().await {
                    observed.borrow_mut().push(lsn);
                    if lsn >= last {
                        break;
                    }
                }
            }
        })
        .detach();
        let woken = Rc::new(RefCell::new(Vec::new()));
        let syncs_before = log.stats().fdatasyncs;

        let next = Cell::new(1);
        // Round A: its fdatasync is held back.
        let a = append_round(&log, &woken, &next);
        eventually(EVENTUALLY, || faults.held.get()).await;
        // Round B is written and synced while A's fdatasync is in flight.
        let b = append_round(&log, &woken, &next);
        eventually(EVENTUALLY, || log.stats().fdatasyncs == syncs_before + 1).await;
        assert_eq!(log.durable_lsn(), Lsn(1), "B is not reported before A");
        assert!(woken.borrow().is_empty());
        log.check_invariants();
        // Round C waits for a free slot (or is in flight with a larger bound); its records,
        // like A's and B's, read back meanwhile.
        let c = append_round(&log, &woken, &next);
        read_back(&log, &a).await;
        read_back(&log, &b).await;
        read_back(&log, &c).await;
        let (last_b, last_c) = (b[b.len() - 1].0, c[c.len() - 1].0);
        eventually(EVENTUALLY, || log.durable_lsn() >= last_c).await;
        let observed = observed.borrow().clone();
        assert!(observed.windows(2).all(|w| w[0] < w[1]), "{observed:?}");
        assert!(
            observed[0] >= last_b,
            "A and B are reported together once A's fdatasync completes: {observed:?}"
        );
        eventually(EVENTUALLY, || {
            woken.borrow().len() as u64 == 3 * ROUND_RECORDS
        })
        .await;
        let woken: Vec<Lsn> = woken.borrow().iter().map(|w| w.unwrap()).collect();
        assert!(
            woken.windows(2).all(|w| w[0] < w[1]),
            "woken in lsn order: {woken:?}"
        );
        log.check_invariants();
        eventually(EVENTUALLY, || Rc::strong_count(&log) == 1).await;
        Rc::try_unwrap(log).ok().unwrap().close().await.unwrap();
        let (_, report, _) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(report.last_lsn, last_c);
    });
}

#[test]
fn a_failed_fdatasync_with_a_later_round_synced_reports_nothing_after_it() {
    let dir = test_dir("pipeline_failed");
    run(async move {
        let faults = Rc::new(HeldSync::default());
        let log = open_armed(&dir, &faults, true).await;
        let woken = Rc::new(RefCell::new(Vec::new()));
        let durable_before = log.durable_lsn();
        let syncs_before = log.stats().fdatasyncs;

        let next = Cell::new(1);
        append_round(&log, &woken, &next);
        eventually(EVENTUALLY, || faults.held.get()).await;
        let b = append_round(&log, &woken, &next);
        let last_b = b[b.len() - 1].0;
        // B's fdatasync succeeds while A's (which will fail) is in flight.
        eventually(EVENTUALLY, || log.stats().fdatasyncs == syncs_before + 1).await;
        assert_eq!(log.durable_lsn(), durable_before);

        let error = log.wait_durable(last_b).await.unwrap_err();
        assert!(matches!(error, StorageError::Failed { .. }), "{error}");
        assert_eq!(error.raw_os_error(), Some(libc::EIO), "{error}");
        assert_eq!(
            log.durable_lsn(),
            durable_before,
            "nothing at or after A is durable"
        );
        assert!(log.health().is_err());
        assert!(matches!(
            log.append(1, b"refused"),
            Err(StorageError::Failed { .. })
        ));
        eventually(EVENTUALLY, || {
            woken.borrow().len() as u64 == 2 * ROUND_RECORDS
        })
        .await;
        assert!(
            woken.borrow().iter().all(Result::is_err),
            "every waiter gets the error"
        );
        assert!(Rc::try_unwrap(log).ok().unwrap().close().await.is_err());
        // Reopening keeps at least what was reported durable.
        let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert!(report.last_lsn >= durable_before);
        assert_eq!(seen[0].payload, payload(0, PAYLOAD_BYTES));
        log.close().await.unwrap();
    });
}
