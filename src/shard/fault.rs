//! Test-only storage faults for a running broker, set with the hidden `--storage-fault` flag,
//! so black-box tests can show what clients see when the disk fails: nacks instead of acks,
//! `connection.blocked`, and no confirmed message lost.
//!
//! Syntax: `fdatasync-error-after=N` or `enospc-after=N`: the first N fdatasyncs (or writes)
//! of every shard's log succeed, later ones fail.

use std::cell::Cell;
use std::io;

use hare_storage::{FaultInjector, SegmentId};

/// Which operation fails, and after how many successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    FdatasyncErrorAfter(u64),
    EnospcAfter(u64),
}

impl StorageFault {
    pub fn parse(text: &str) -> Option<StorageFault> {
        let (name, count) = text.split_once('=')?;
        let count = count.parse().ok()?;
        match name {
            "fdatasync-error-after" => Some(StorageFault::FdatasyncErrorAfter(count)),
            "enospc-after" => Some(StorageFault::EnospcAfter(count)),
            _ => None,
        }
    }
}

/// The injector one shard's log uses.
pub struct CountingFault {
    fault: StorageFault,
    writes: Cell<u64>,
    fdatasyncs: Cell<u64>,
}

impl CountingFault {
    pub fn new(fault: StorageFault) -> CountingFault {
        CountingFault {
            fault,
            writes: Cell::new(0),
            fdatasyncs: Cell::new(0),
        }
    }
}

impl FaultInjector for CountingFault {
    fn before_write(&self, _segment: SegmentId, _offset: u64, _len: usize) -> Option<io::Error> {
        self.writes.set(self.writes.get() + 1);
        match self.fault {
            StorageFault::EnospcAfter(after) if self.writes.get() > after => {
                Some(io::Error::from_raw_os_error(libc::ENOSPC))
            }
            _ => None,
        }
    }

    fn before_fdatasync(&self, _segment: SegmentId) -> Option<io::Error> {
        self.fdatasyncs.set(self.fdatasyncs.get() + 1);
        match self.fault {
            StorageFault::FdatasyncErrorAfter(after) if self.fdatasyncs.get() > after => {
                Some(io::Error::from_raw_os_error(libc::EIO))
            }
            _ => None,
        }
    }
}
