//! Hash maps and sets on the data path. The standard library's SipHash showed up at about 14 %
//! of a shard's time routing publishes (exchange, queue, channel and unacked lookups per
//! message); aHash, already compiled in for glommio, is several times cheaper and still keyed
//! per process, so names chosen by clients cannot be used to force collisions.

use std::collections::{HashMap, HashSet};

pub type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;
pub type FastSet<K> = HashSet<K, ahash::RandomState>;
