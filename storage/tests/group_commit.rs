//! Group commit: many appends, concurrent waiters, few fdatasyncs, a monotonic durable LSN.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use common::*;
use hare_storage::{Log, Lsn, StorageError};

#[test]
fn ten_thousand_appends_with_concurrent_waiters_all_resolve() {
    let dir = test_dir("group_commit_10k");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let log = Rc::new(log);
        let resolved = Rc::new(Cell::new(0u64));
        let observed = Rc::new(RefCell::new(Vec::new()));
        let monitor = glommio::spawn_local({
            let log = log.clone();
            let observed = observed.clone();
            async move {
                loop {
                    let lsn = log.durable_changed().await.unwrap();
                    observed.borrow_mut().push(lsn);
                    if lsn == Lsn(10_000) {
                        break;
                    }
                }
            }
        });
        let mut waiters = Vec::new();
        for i in 0..10_000u64 {
            let (lsn, _) = log
                .append((i % 3) as u8, &payload(i, 64 + (i as usize % 200)))
                .unwrap();
            assert_eq!(lsn, Lsn(i + 1));
            let log_for_waiter = log.clone();
            let resolved = resolved.clone();
            waiters.push(glommio::spawn_local(async move {
                log_for_waiter.wait_durable(lsn).await.unwrap();
                assert!(log_for_waiter.durable_lsn() >= lsn);
                resolved.set(resolved.get() + 1);
            }));
            if i % 997 == 0 {
                // Let the committer run between bursts, as a broker's network task would.
                log.wait_durable(lsn).await.unwrap();
                log.check_invariants();
            }
        }
        for waiter in waiters {
            waiter.await;
        }
        monitor.await;
        assert_eq!(resolved.get(), 10_000);
        let increasing = observed.borrow().windows(2).all(|w| w[0] < w[1]);
        assert!(increasing, "durable lsn never decreases");
        let stats = log.stats();
        assert!(
            stats.fdatasyncs * 20 < 10_000,
            "group commit batches records: {} fdatasyncs for 10000 records",
            stats.fdatasyncs
        );
        log.check_invariants();
        let log = Rc::try_unwrap(log).ok().expect("no other handles remain");
        log.close().await.unwrap();
        let (_, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(report.records, 10_000);
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, s)| s.payload == payload(i as u64, 64 + (i % 200))));
    });
}

#[test]
fn close_flushes_buffered_records() {
    let dir = test_dir("close_flushes");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        for i in 0..100 {
            log.append(1, &payload(i, 100)).unwrap();
        }
        log.close().await.unwrap();
        let (log, report, _) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(report.records, 100);
        assert_eq!(log.durable_lsn(), Lsn(100));
        log.close().await.unwrap();
    });
}

#[test]
fn a_burst_beyond_the_buffer_bound_is_backpressure() {
    let dir = test_dir("backpressure");
    run(async move {
        let mut config = config(&dir);
        config.segment_size_bytes = 8 << 20;
        let (log, _, _) = open_collect(config).await.unwrap();
        let body = vec![1u8; 64 << 10];
        let mut accepted = 0u64;
        // No await in this loop: the committer cannot take anything, so the buffer fills up.
        let error = loop {
            match log.append(0, &body) {
                Ok(_) => accepted += 1,
                Err(error) => break error,
            }
        };
        assert!(
            matches!(error, StorageError::Backpressure { .. }),
            "{error}"
        );
        assert!(accepted * (64 << 10) >= hare_storage::WRITE_BUFFER_BYTES_MAX - (128 << 10));
        log.check_invariants();
        log.wait_durable(Lsn(accepted)).await.unwrap();
        log.append(0, &body).unwrap();
        log.close().await.unwrap();
        let (_, report, _) = open_collect(self::config(&dir)).await.unwrap();
        assert_eq!(report.records, accepted + 1);
    });
}

#[test]
fn dropping_a_wait_durable_future_is_harmless() {
    let dir = test_dir("drop_waiter");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let (lsn, _) = log.append(0, b"x").unwrap();
        drop(log.wait_durable(lsn));
        log.wait_durable(lsn).await.unwrap();
        let _: &Log = &log;
        log.close().await.unwrap();
    });
}
