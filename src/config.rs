//! Broker configuration: what the command line sets, with RabbitMQ's defaults for the protocol
//! limits a client negotiates.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Default of `Config::consumer_timeout`, in milliseconds: RabbitMQ's `consumer_timeout`
/// (30 minutes).
pub const CONSUMER_TIMEOUT_MS_DEFAULT: u64 = 1_800_000;

/// Default of `Config::stats_interval`, in milliseconds.
pub const STATS_INTERVAL_MS_DEFAULT: u64 = 5_000;

/// Default of `Config::listen_retry`, in seconds: far longer than a dead broker's sockets
/// outlive it (milliseconds; a few hundred on a busy disk), short enough that a port another
/// program holds is reported soon.
pub const LISTEN_RETRY_SECS_DEFAULT: u64 = 10;

/// Default of `Config::message_size_max`: RabbitMQ 3.13's `max_message_size` (128 MiB).
pub const MESSAGE_SIZE_MAX_DEFAULT: u64 = 128 << 20;

/// Default of `Config::frame_max`: RabbitMQ's `frame_max`.
pub const FRAME_MAX_DEFAULT: u32 = 131_072;

/// Default of `Config::channel_max`: RabbitMQ's `channel_max`.
pub const CHANNEL_MAX_DEFAULT: u16 = 2047;

/// Default of `Config::metadata_compaction_bytes`.
pub const METADATA_COMPACTION_BYTES_DEFAULT: u64 = 16 << 20;

/// Where a new queue declared over AMQP goes (RabbitMQ's `queue_leader_locator` names, here
/// across the shards of one node). Exclusive queues always stay with their connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum QueuePlacement {
    /// The declaring connection's shard.
    ClientLocal,
    /// Round the shards, starting with the declaring connection's.
    #[default]
    Balanced,
}

/// Default memory high watermark: RabbitMQ's `vm_memory_high_watermark.relative` (0.4 of RAM).
pub const MEMORY_HIGH_WATERMARK_DEFAULT: f64 = 0.4;

/// Default of `Config::disk_free_limit`: RabbitMQ's `disk_free_limit.absolute` (50 MB).
pub const DISK_FREE_LIMIT_DEFAULT: u64 = 50_000_000;

/// Resident memory above which publishers are blocked (the memory alarm).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryWatermark {
    /// A fraction of physical memory (RabbitMQ's `vm_memory_high_watermark.relative`).
    Relative(f64),
    /// Bytes (RabbitMQ's `vm_memory_high_watermark.absolute`).
    Absolute(u64),
}

impl MemoryWatermark {
    /// The watermark in bytes, given the host's physical memory. Unknown memory (0: no
    /// /proc/meminfo) gives no relative watermark rather than one every process is over.
    pub fn bytes(self, memory_total: u64) -> u64 {
        match self {
            MemoryWatermark::Relative(_) if memory_total == 0 => u64::MAX,
            MemoryWatermark::Relative(fraction) => (memory_total as f64 * fraction) as u64,
            MemoryWatermark::Absolute(bytes) => bytes,
        }
    }
}

/// A byte count as RabbitMQ's configuration writes it: a plain number, or one with a unit
/// suffix, decimal (kB, MB, GB, TB: powers of 1000) or binary (KiB, MiB, GiB, TiB, and
/// RabbitMQ's k/K, m/M, g/G, t/T: powers of 1024).
pub fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim() {
        "" => 1,
        "kB" | "KB" => 1000,
        "MB" => 1000_u64.pow(2),
        "GB" => 1000_u64.pow(3),
        "TB" => 1000_u64.pow(4),
        "k" | "K" | "KiB" => 1 << 10,
        "m" | "M" | "MiB" => 1 << 20,
        "g" | "G" | "GiB" => 1 << 30,
        "t" | "T" | "TiB" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub shards: usize,
    /// Bind each shard to one CPU (production) or let the OS place them (tests).
    pub pin_shards: bool,
    /// Where the queues that connections declare are placed (`Shard::place_queue`).
    pub queue_placement: QueuePlacement,
    /// Move a connection to its queue's shard at a basic.consume, or its first basic.publish
    /// through the default exchange, for a queue on another shard, when nothing else ties it
    /// to its shard (`connection::moving`).
    pub move_connections: bool,
    /// Largest frame we accept and propose in connection.tune; a client may ask for less,
    /// never for more or for no limit (0).
    pub frame_max: u32,
    /// Channels a connection may have open at once, proposed in connection.tune; a client
    /// may ask for fewer. 0: no limit.
    pub channel_max: u16,
    /// Connections this node keeps open at once (RabbitMQ's `connection_max`); None: no
    /// limit. A socket still in its handshake does not count.
    pub connection_max: Option<u32>,
    /// Queues this node holds, in all vhosts together (RabbitMQ's `cluster_queue_limit`);
    /// None: no limit.
    pub queue_max: Option<u32>,
    /// Heartbeat interval we propose; the client's tune-ok value is final.
    pub heartbeat_interval: Duration,
    /// Time a client has to finish the handshake (RabbitMQ: 10 s).
    pub handshake_timeout: Duration,
    /// How long we wait for connection.close-ok after sending connection.close.
    pub close_timeout: Duration,
    /// How long a delivery may stay unacknowledged before its channel is closed with 406
    /// (RabbitMQ's `consumer_timeout`; a queue's `x-consumer-timeout` overrides it). None
    /// disables it.
    pub consumer_timeout: Option<Duration>,
    /// Largest message body accepted (RabbitMQ's `max_message_size`, 128 MiB by default),
    /// checked against the content header's body size before any body frame is read.
    pub message_size_max: u64,
    /// The user `guest` may log in only from loopback addresses (RabbitMQ's default).
    pub guest_loopback_only: bool,
    /// The administrator created, with full permissions on `/`, when the data directory holds
    /// no users yet (RabbitMQ's `default_user`/`default_pass`); ignored afterwards.
    pub default_user: String,
    pub default_pass: String,
    /// A RabbitMQ-format definitions file imported (merged) at every start before clients are
    /// accepted (RabbitMQ's `load_definitions`).
    pub load_definitions: Option<PathBuf>,
    /// Size of each log segment file (tests use small ones to exercise segment GC).
    pub segment_size_bytes: u64,
    /// Changes appended to the metadata log after its snapshot before a new snapshot starts
    /// the next generation (also at least twice the snapshot, so rewrites stay O(1) per
    /// change on average). Tests use small values to rewrite often.
    pub metadata_compaction_bytes: u64,
    /// Where AMQP over TLS is accepted (RabbitMQ: 5671); None: no TLS listener. Needs `tls`.
    pub tls_listen: Option<SocketAddr>,
    /// The certificate, key and client-certificate settings every TLS listener uses, and the
    /// server configuration built from them (reloaded when the files change).
    pub tls: Option<std::sync::Arc<crate::tls::TlsContext>>,
    /// Where the management HTTP API listens (RabbitMQ: 15672); None: not served.
    pub management_listen: Option<SocketAddr>,
    /// The management API speaks HTTPS (with `tls`'s certificate) instead of HTTP.
    pub management_tls: bool,
    /// The metrics endpoint speaks HTTPS (with `tls`'s certificate) instead of HTTP.
    pub metrics_tls: bool,
    /// Where Prometheus metrics are served (RabbitMQ: 15692); None: not served.
    pub metrics_listen: Option<SocketAddr>,
    /// How long start-up keeps trying to bind a listening address that is still in use
    /// (EADDRINUSE) before it gives up; zero fails at once. A broker killed a moment ago keeps
    /// its listening sockets open for some milliseconds after it is gone, while the kernel
    /// tears down its io_uring instance (which still holds an accept and disk I/O), and a
    /// supervisor restarting it at once would otherwise see the port taken. Each shard also
    /// waits this long at most, before recovery, for log files another process still has
    /// open (the same broker's O_DIRECT writes still in flight; hare_storage's `in_use_wait`).
    pub listen_retry: Duration,
    /// How often the management API samples every shard's counters; rates are the change
    /// between the last two samples (RabbitMQ collects every 5 s).
    pub stats_interval: Duration,
    /// Test-only: make every shard's log fail after some operations.
    pub storage_fault: Option<crate::storage_fault::StorageFault>,
    /// Resident memory above which publishers are blocked (`shard::resource_alarms`).
    pub memory_high_watermark: MemoryWatermark,
    /// Free space on the data directory's filesystem below which publishers are blocked.
    pub disk_free_limit: u64,
}

impl Config {
    /// The memory high watermark in bytes on this host.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.memory_high_watermark
            .bytes(crate::shard::resource_alarms::memory_total_bytes())
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 5672)),
            data_dir: PathBuf::from("hare-data"),
            shards: 1,
            pin_shards: false,
            move_connections: true,
            queue_placement: QueuePlacement::Balanced,
            frame_max: FRAME_MAX_DEFAULT,
            channel_max: CHANNEL_MAX_DEFAULT,
            connection_max: None,
            queue_max: None,
            heartbeat_interval: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(10),
            consumer_timeout: Some(Duration::from_millis(CONSUMER_TIMEOUT_MS_DEFAULT)),
            message_size_max: MESSAGE_SIZE_MAX_DEFAULT,
            guest_loopback_only: true,
            default_user: "guest".into(),
            default_pass: "guest".into(),
            load_definitions: None,
            segment_size_bytes: hare_storage::SEGMENT_SIZE_BYTES_DEFAULT,
            metadata_compaction_bytes: METADATA_COMPACTION_BYTES_DEFAULT,
            tls_listen: None,
            tls: None,
            management_listen: None,
            management_tls: false,
            metrics_listen: None,
            metrics_tls: false,
            stats_interval: Duration::from_millis(STATS_INTERVAL_MS_DEFAULT),
            listen_retry: Duration::from_secs(LISTEN_RETRY_SECS_DEFAULT),
            storage_fault: None,
            memory_high_watermark: MemoryWatermark::Relative(MEMORY_HIGH_WATERMARK_DEFAULT),
            disk_free_limit: DISK_FREE_LIMIT_DEFAULT,
        }
    }
}

/// This node's name, `hare@<hostname>` (RabbitMQ's `rabbit@<hostname>`), as the management
/// API, metrics and trace headers show it.
pub fn node_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| format!("hare@{}", hostname()))
}

fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most `buffer.len()` bytes into the buffer it is given.
    let status = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if status != 0 {
        return "localhost".to_owned();
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_take_rabbitmq_units() {
        assert_eq!(parse_byte_size("50000000"), Some(50_000_000));
        assert_eq!(parse_byte_size("50MB"), Some(50_000_000));
        assert_eq!(parse_byte_size("1GB"), Some(1_000_000_000));
        assert_eq!(parse_byte_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_byte_size("128M"), Some(128 << 20));
        assert_eq!(parse_byte_size("64 MiB"), Some(64 << 20));
        assert_eq!(parse_byte_size("MB"), None);
        assert_eq!(parse_byte_size("5 parsecs"), None);
        assert_eq!(parse_byte_size("-5"), None);
        assert_eq!(parse_byte_size("99999999999999999999TB"), None);
    }

    #[test]
    fn relative_watermark_is_a_share_of_ram() {
        assert_eq!(MemoryWatermark::Relative(0.4).bytes(1000), 400);
        assert_eq!(MemoryWatermark::Absolute(123).bytes(1000), 123);
        assert_eq!(MemoryWatermark::Relative(0.4).bytes(0), u64::MAX);
    }
}
