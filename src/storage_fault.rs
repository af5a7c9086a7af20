//! Test-only storage faults for a running broker, set with the hidden `--storage-fault` flag,
//! so black-box tests can show what clients see when the disk fails: nacks instead of acks,
//! `connection.blocked` until the fault clears, and no confirmed message lost. This module is
//! only the flag's value; `shard::fault` injects it into the shards' logs.
//!
//! Syntax: `fdatasync-error-after=N` or `enospc-after=N`: the first N fdatasyncs (or writes)
//! of every shard's log succeed, later ones fail. A `,for=M` suffix makes only the next M
//! fail (a disk that recovers, e.g. space freed), so the broker's reopen can succeed.
//! `fdatasync-error-while=PATH` or `enospc-while=PATH`: they fail while the file PATH exists,
//! so a test decides when the disk fails and when it recovers (each operation then costs a
//! stat of PATH: a blocking call, acceptable only because the flag is for tests).

use std::path::PathBuf;

/// Which operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Fdatasync,
    Enospc,
}

/// Which operation fails, after how many successes, and how many times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFault {
    pub kind: FaultKind,
    pub after: u64,
    /// `None`: every operation after `after` fails.
    pub times: Option<u64>,
    /// Set: operations fail while this file exists (`after` and `times` are not used).
    pub while_exists: Option<PathBuf>,
}

impl StorageFault {
    pub fn parse(text: &str) -> Option<StorageFault> {
        if let Some((name, path)) = text.split_once('=') {
            let kind = match name {
                "fdatasync-error-while" => Some(FaultKind::Fdatasync),
                "enospc-while" => Some(FaultKind::Enospc),
                _ => None,
            };
            if let Some(kind) = kind {
                return (!path.is_empty()).then(|| StorageFault {
                    kind,
                    after: 0,
                    times: None,
                    while_exists: Some(PathBuf::from(path)),
                });
            }
        }
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
            while_exists: None,
        })
    }

    /// Whether the `count`th operation (1-based) of this fault's kind fails.
    pub fn fails(&self, count: u64) -> bool {
        if let Some(path) = &self.while_exists {
            return path.exists();
        }
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
        let toggled =
            StorageFault::parse("fdatasync-error-while=/nonexistent/hare-fault").expect("valid");
        assert_eq!(toggled.kind, FaultKind::Fdatasync);
        assert!(!toggled.fails(1_000_000), "no file, no failure");
        let present = StorageFault::parse("enospc-while=/").expect("valid");
        assert!(present.fails(1) && present.kind == FaultKind::Enospc);
        for bad in [
            "fdatasync-error-while=",
            "enospc-after=x",
            "enospc=1",
            "enospc-after=1,times=2",
            "enospc-after=1,for=-1",
        ] {
            assert_eq!(StorageFault::parse(bad), None, "{bad}");
        }
    }
}
