//! The fault injector a shard's log uses when the hidden `--storage-fault` flag is set
//! (`storage_fault` has the flag's syntax): it counts the log's writes and fdatasyncs and fails
//! the ones the fault names.

use std::cell::Cell;
use std::io;

use hare_storage::{FaultInjector, SegmentId};

use crate::storage_fault::{FaultKind, StorageFault};

/// The injector one shard's log uses (kept across reopens, so the counts go on).
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
        (self.fault.kind == FaultKind::Enospc && self.fault.fails(self.writes.get()))
            .then(|| io::Error::from_raw_os_error(libc::ENOSPC))
    }

    fn before_fdatasync(&self, _segment: SegmentId) -> Option<io::Error> {
        self.fdatasyncs.set(self.fdatasyncs.get() + 1);
        (self.fault.kind == FaultKind::Fdatasync && self.fault.fails(self.fdatasyncs.get()))
            .then(|| io::Error::from_raw_os_error(libc::EIO))
    }
}
