//! Test-only storage faults for a running broker, set with the hidden `--storage-fault` flag,
//! so black-box tests can show what clients see when the disk fails: nacks instead of acks,
//! `connection.blocked` until the fault clears, and no confirmed message lost. This module is
//! only the flag's value; `shard::fault` injects it into the shards' logs.
//!
//! Syntax: `fdatasync-error-after=N` or `enospc-after=N`: the first N fdatasyncs (or writes)
//! of every shard's log succeed, later ones fail. A `,for=M` suffix makes only the next M
//! fail (a disk that recovers, e.g. space freed), so the broker's reopen can succeed.

/// Which operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Fdatasync,
    Enospc,
}

/// Which operation fails, after how many successes, and how many times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageFault {
    pub kind: FaultKind,
    pub after: u64,
    /// `None`: every operation after `after` fails.
    pub times: Option<u64>,
}

impl StorageFault {
    pub fn parse(text: &str) -> Option<StorageFault> {
        let (spec, times) = match text.split_once(',') {
            Some((spec, times)) => (spec, Some(times.strip_prefix("for=")?.parse().ok()?)),
            None => (text, None),
        };
        let (name, after) = spec.split_once('=')?;
        let kind = match name {
            "fdatasync-error-after" => FaultKind::Fdatasync,
            "enospc-after" => FaultKind::Enospc,
            _ => return None,
        };
        Some(StorageFault {
            kind,
            after: after.parse().ok()?,
            times,
        })
    }

    /// Whether the `count`th operation (1-based) of this fault's kind fails.
    pub fn fails(&self, count: u64) -> bool {
        count > self.after && self.times.is_none_or(|times| count <= self.after + times)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_counts_a_fault_that_clears() {
        let fault = StorageFault::parse("enospc-after=2,for=3").expect("valid");
        assert_eq!(fault.kind, FaultKind::Enospc);
        let failing: Vec<u64> = (1..=8).filter(|&n| fault.fails(n)).collect();
        assert_eq!(failing, vec![3, 4, 5]);
        let forever = StorageFault::parse("fdatasync-error-after=1").expect("valid");
        assert!(forever.fails(1_000_000) && !forever.fails(1));
        for bad in [
            "enospc-after=x",
            "enospc=1",
            "enospc-after=1,times=2",
            "enospc-after=1,for=-1",
        ] {
            assert_eq!(StorageFault::parse(bad), None, "{bad}");
        }
    }
}
