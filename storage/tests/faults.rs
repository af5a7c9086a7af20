//! Fault injection: a failed write or fdatasync (EIO, ENOSPC) is fatal for the log, every waiter
//! gets the error, and a reopen keeps every record that was reported durable.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::rc::Rc;

use common::*;
use hare_storage::{Lsn, StorageError};

enum Fault {
    Write,
    Fdatasync,
}

fn failure_is_fatal_and_durable_records_survive(name: &str, fault: Fault, errno: i32) {
    let dir = test_dir(name);
    let durable = run({
        let dir = dir.clone();
        async move {
            let faults = ScriptedFaults::new(errno);
            match fault {
                Fault::Write => faults.fail_write.set(true),
                Fault::Fdatasync => faults.fail_fdatasync.set(true),
            }
            let mut config = config(&dir);
            config.faults = Some(faults.clone() as Rc<dyn hare_storage::FaultInjector>);
            let (log, _, _) = open_collect(config).await.unwrap();
            let mut durable = Vec::new();
            for i in 0..200 {
                let (lsn, _) = log.append(1, &payload(i, 700)).unwrap();
                if i % 50 == 49 {
                    log.wait_durable(lsn).await.unwrap();
                }
            }
            durable.extend(1..=log.durable_lsn().0);
            faults.armed.set(true);
            let (lsn, _) = log.append(1, &payload(200, 700)).unwrap();
            let error = log.wait_durable(lsn).await.unwrap_err();
            assert!(matches!(error, StorageError::Failed { .. }), "{error}");
            assert_eq!(error.raw_os_error(), Some(errno), "{error}");
            assert!(log.health().is_err());
            assert!(matches!(
                log.append(1, b"refused"),
                Err(StorageError::Failed { .. })
            ));
            assert!(log.durable_changed().await.is_err());
            assert!(
                log.durable_lsn() < lsn,
                "a failed commit is never reported durable"
            );
            // Once the log has failed, a wait reports the failure even for an lsn that was
            // durable before it: durable_lsn still says which records are safe (the reopen
            // below finds them), and the failed lsn fails the same way.
            let last_durable = Lsn(durable.len() as u64);
            assert!(log.durable_lsn() >= last_durable);
            for waited in [last_durable, lsn] {
                let error = log.wait_durable(waited).await.unwrap_err();
                assert!(matches!(error, StorageError::Failed { .. }), "{error}");
                assert_eq!(error.raw_os_error(), Some(errno), "{error}");
            }
            assert!(log.close().await.is_err());
            durable
        }
    });
    run(async move {
        let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert!(report.last_lsn.0 >= durable.len() as u64);
        for lsn in durable {
            let record = &seen[lsn as usize - 1];
            assert_eq!(record.lsn, Lsn(lsn));
            assert_eq!(record.payload, payload(lsn - 1, 700));
        }
        log.close().await.unwrap();
    });
}

#[test]
fn failed_write_is_fatal() {
    failure_is_fatal_and_durable_records_survive("fault_write_eio", Fault::Write, libc::EIO);
}

#[test]
fn failed_fdatasync_is_fatal() {
    failure_is_fatal_and_durable_records_survive(
        "fault_fdatasync_eio",
        Fault::Fdatasync,
        libc::EIO,
    );
}

#[test]
fn enospc_on_write_is_fatal() {
    failure_is_fatal_and_durable_records_survive("fault_write_enospc", Fault::Write, libc::ENOSPC);
}

#[test]
fn enospc_on_fdatasync_is_fatal() {
    failure_is_fatal_and_durable_records_survive(
        "fault_fdatasync_enospc",
        Fault::Fdatasync,
        libc::ENOSPC,
    );
}

#[test]
fn pending_waiters_all_get_the_error() {
    let dir = test_dir("fault_pending_waiters");
    run(async move {
        let faults = ScriptedFaults::new(libc::EIO);
        faults.fail_fdatasync.set(true);
        faults.armed.set(true);
        let mut config = config(&dir);
        config.faults = Some(faults.clone() as Rc<dyn hare_storage::FaultInjector>);
        let (log, _, _) = open_collect(config).await.unwrap();
        let log = Rc::new(log);
        let mut waiters = Vec::new();
        for i in 0..100 {
            let (lsn, _) = log.append(0, &payload(i, 10)).unwrap();
            let log = log.clone();
            waiters.push(glommio::spawn_local(
                async move { log.wait_durable(lsn).await },
            ));
        }
        for waiter in waiters {
            assert!(waiter.await.is_err());
        }
        assert_eq!(log.durable_lsn(), Lsn(0));
    });
}
