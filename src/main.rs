//! The `hare` broker binary: command line → configuration → the broker (`hare::server`) →
//! wait for a signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use hare::config::{Config, MemoryWatermark};

/// Hare: an AMQP 0-9-1 message broker that RabbitMQ clients use unchanged.
#[derive(Debug, Parser)]
#[command(name = "hare", version)]
struct Cli {
    /// Address for AMQP 0-9-1 clients.
    #[arg(long, default_value = "0.0.0.0:5672")]
    listen: SocketAddr,
    /// Address for AMQP over TLS (AMQPS; RabbitMQ's port is 5671). No TLS listener unless
    /// given; needs --tls-cert and --tls-key.
    #[arg(long)]
    tls_listen: Option<SocketAddr>,
    /// The server's certificate chain (PEM, leaf first), for AMQPS and HTTPS. Reloaded when
    /// the file changes.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM) client certificates are verified against.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Ask TLS clients for a certificate and verify it against --tls-ca (RabbitMQ's
    /// verify_peer); a verified certificate's CN can log in with EXTERNAL.
    #[arg(long)]
    tls_verify_peer: bool,
    /// With --tls-verify-peer: refuse TLS clients without a certificate (RabbitMQ's
    /// fail_if_no_peer_cert).
    #[arg(long, requires = "tls_verify_peer")]
    tls_fail_if_no_peer_cert: bool,
    /// Serve the management API over HTTPS with the --tls-cert certificate.
    #[arg(long)]
    management_tls: bool,
    /// Serve the metrics endpoint over HTTPS with the --tls-cert certificate.
    #[arg(long)]
    metrics_tls: bool,
    /// Address of the management HTTP API (RabbitMQ-compatible, under /api/).
    #[arg(long, default_value = "0.0.0.0:15672")]
    management_listen: SocketAddr,
    /// Address of the Prometheus metrics endpoint (/metrics).
    #[arg(long, default_value = "0.0.0.0:15692")]
    metrics_listen: SocketAddr,
    /// How long to keep trying to bind a listening address that is still in use, in seconds
    /// (0: fail at once). A broker killed a moment ago holds its ports for a few more
    /// milliseconds; another live program holding one makes the start fail after this time.
    /// Also how long each shard waits, before recovery, for log files such a broker still has
    /// open (its last writes in flight).
    #[arg(long, default_value_t = hare::config::LISTEN_RETRY_SECS_DEFAULT)]
    listen_retry_secs: u64,
    /// How often the management API samples statistics for its rates, in milliseconds.
    #[arg(long, default_value_t = hare::config::STATS_INTERVAL_MS_DEFAULT, hide = true)]
    stats_interval_ms: u64,
    /// Directory for durable data.
    #[arg(long, default_value = "./hare-data")]
    data_dir: PathBuf,
    /// Executors (one per core); default: the number of CPUs.
    #[arg(long)]
    shards: Option<usize>,
    /// Pin each shard to a CPU.
    #[arg(long)]
    pin_shards: bool,
    /// Move a connection to the shard of the queue it consumes from (at a basic.consume) or
    /// publishes to (its first basic.publish, default exchange), when nothing else ties it to
    /// its shard (true or false).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    move_connections: bool,
    /// Where a new queue goes: balanced (round the shards, starting with the declaring
    /// connection's) or client-local (the declaring connection's shard). Exclusive queues stay
    /// with their connection.
    #[arg(long, value_enum, default_value_t = hare::config::QueuePlacement::Balanced)]
    queue_placement: hare::config::QueuePlacement,
    /// Heartbeat interval proposed to clients, in seconds (0 disables).
    #[arg(long, default_value_t = 60)]
    heartbeat_secs: u64,
    /// How long a delivery may stay unacknowledged before its channel is closed, in
    /// milliseconds (RabbitMQ's consumer_timeout; 0 disables). A queue's x-consumer-timeout
    /// argument overrides it.
    #[arg(long, default_value_t = hare::config::CONSUMER_TIMEOUT_MS_DEFAULT)]
    consumer_timeout_ms: u64,
    /// Time a client has to finish the handshake, in milliseconds (RabbitMQ's
    /// handshake_timeout); a socket that has not opened by then is closed.
    #[arg(long, default_value_t = 10_000)]
    handshake_timeout_ms: u64,
    /// Largest message body accepted, in bytes (RabbitMQ's max_message_size); larger
    /// publishes are refused with 406 PRECONDITION_FAILED.
    #[arg(long, default_value_t = hare::config::MESSAGE_SIZE_MAX_DEFAULT)]
    max_message_size: u64,
    /// Largest frame, in bytes, proposed in connection.tune (RabbitMQ's frame_max; at least
    /// 4096).
    #[arg(long, default_value_t = hare::config::FRAME_MAX_DEFAULT,
          value_parser = clap::value_parser!(u32).range(4096..))]
    frame_max: u32,
    /// Channels per connection, proposed in connection.tune (RabbitMQ's channel_max; 0: no
    /// limit).
    #[arg(long, default_value_t = hare::config::CHANNEL_MAX_DEFAULT)]
    channel_max: u16,
    /// Open connections this node accepts at once (RabbitMQ's connection_max); more are
    /// refused at connection.open with 530 NOT_ALLOWED. Default: no limit.
    #[arg(long)]
    max_connections: Option<u32>,
    /// Queues this node holds in all vhosts together (RabbitMQ's cluster_queue_limit); more
    /// are refused with 406 PRECONDITION_FAILED. Default: no limit.
    #[arg(long)]
    max_queues: Option<u32>,
    /// Size of each log segment file in bytes (tests use small segments).
    #[arg(long, default_value_t = hare_storage::SEGMENT_SIZE_BYTES_DEFAULT, hide = true)]
    segment_size_bytes: u64,
    /// Bytes of metadata changes after a snapshot before the next snapshot (tests use small
    /// values to rewrite often).
    #[arg(long, default_value_t = hare::config::METADATA_COMPACTION_BYTES_DEFAULT, hide = true)]
    metadata_compaction_bytes: u64,
    /// The administrator created on first start (no users stored yet); later starts keep the
    /// stored users. Also HARE_DEFAULT_USER or RABBITMQ_DEFAULT_USER.
    #[arg(long)]
    default_user: Option<String>,
    /// That user's password. Also HARE_DEFAULT_PASS or RABBITMQ_DEFAULT_PASS.
    #[arg(long)]
    default_pass: Option<String>,
    /// A RabbitMQ-format definitions file (JSON) to import at every start, before clients
    /// are accepted.
    #[arg(long)]
    load_definitions: Option<PathBuf>,
    /// Resident memory above which publishers are blocked, as a fraction of physical memory
    /// (RabbitMQ's vm_memory_high_watermark.relative).
    #[arg(long, default_value_t = hare::config::MEMORY_HIGH_WATERMARK_DEFAULT,
          value_parser = parse_fraction, conflicts_with = "vm_memory_high_watermark_bytes")]
    vm_memory_high_watermark: f64,
    /// The memory high watermark in bytes instead (RabbitMQ's
    /// vm_memory_high_watermark.absolute); units as for --disk-free-limit.
    #[arg(long, value_parser = parse_byte_size)]
    vm_memory_high_watermark_bytes: Option<u64>,
    /// Free space on the data directory's filesystem below which publishers are blocked, in
    /// bytes or with a unit: 50MB, 1GB (powers of 1000), 512MiB, 2GiB (powers of 1024)
    /// (RabbitMQ's disk_free_limit.absolute).
    #[arg(long, default_value = "50MB", value_parser = parse_byte_size)]
    disk_free_limit: u64,
    /// Test-only storage fault, e.g. `fdatasync-error-after=20` or `enospc-after=5`.
    #[arg(long, hide = true, value_parser = parse_storage_fault)]
    storage_fault: Option<hare::storage_fault::StorageFault>,
}

fn parse_storage_fault(text: &str) -> Result<hare::storage_fault::StorageFault, String> {
    hare::storage_fault::StorageFault::parse(text).ok_or_else(|| {
        "expected fdatasync-error-after=N or enospc-after=N, optionally with ,for=M, or \
         fdatasync-error-while=PATH or enospc-while=PATH"
            .to_string()
    })
}

/// One line per shard: what it recovered from its log.
fn log_recovery(broker: &hare::shard::startup::Broker) {
    for summary in &broker.recovered {
        tracing::info!(
            shard = summary.shard.0,
            queues = summary.queues,
            messages = summary.messages,
            records = summary.records,
            torn_tail_bytes = summary.torn_tail_bytes,
            duration_ms = summary.duration.as_millis() as u64,
            "recovered"
        );
    }
}

fn parse_byte_size(text: &str) -> Result<u64, String> {
    hare::config::parse_byte_size(text).ok_or_else(|| {
        "expected a byte count, optionally with a unit: 50MB, 1GB, 512MiB, 2GiB".to_string()
    })
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(fraction) if fraction > 0.0 && fraction <= 1.0 => Ok(fraction),
        _ => Err("expected a fraction of physical memory above 0 and at most 1, e.g. 0.4".into()),
    }
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("HARE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let shards = cli
        .shards
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    anyhow::ensure!(
        (1..=1024).contains(&shards),
        "--shards must be between 1 and 1024"
    );
    let tls = tls_context(&cli)?;
    let config = Config {
        listen: cli.listen,
        tls_listen: cli.tls_listen,
        tls,
        management_tls: cli.management_tls,
        metrics_tls: cli.metrics_tls,
        data_dir: cli.data_dir,
        shards,
        pin_shards: cli.pin_shards,
        move_connections: cli.move_connections,
        queue_placement: cli.queue_placement,
        heartbeat_interval: std::time::Duration::from_secs(cli.heartbeat_secs),
        handshake_timeout: std::time::Duration::from_millis(cli.handshake_timeout_ms),
        message_size_max: cli.max_message_size,
        frame_max: cli.frame_max,
        channel_max: cli.channel_max,
        connection_max: cli.max_connections,
        queue_max: cli.max_queues,
        consumer_timeout: (cli.consumer_timeout_ms > 0)
            .then(|| std::time::Duration::from_millis(cli.consumer_timeout_ms)),
        segment_size_bytes: cli.segment_size_bytes,
        metadata_compaction_bytes: cli.metadata_compaction_bytes,
        storage_fault: cli.storage_fault,
        management_listen: Some(cli.management_listen),
        metrics_listen: Some(cli.metrics_listen),
        stats_interval: std::time::Duration::from_millis(cli.stats_interval_ms.max(100)),
        listen_retry: std::time::Duration::from_secs(cli.listen_retry_secs),
        default_user: setting(
            cli.default_user,
            "HARE_DEFAULT_USER",
            "RABBITMQ_DEFAULT_USER",
        )
        .unwrap_or_else(|| "guest".into()),
        default_pass: setting(
            cli.default_pass,
            "HARE_DEFAULT_PASS",
            "RABBITMQ_DEFAULT_PASS",
        )
        .unwrap_or_else(|| "guest".into()),
        load_definitions: cli.load_definitions,
        memory_high_watermark: cli.vm_memory_high_watermark_bytes.map_or(
            MemoryWatermark::Relative(cli.vm_memory_high_watermark),
            MemoryWatermark::Absolute,
        ),
        disk_free_limit: cli.disk_free_limit,
        ..Config::default()
    };

    // Block SIGINT/SIGTERM before the shard threads start so only this thread receives them.
    let signals = block_termination_signals();
    let broker = match hare::server::start(config) {
        Ok(broker) => broker,
        Err(error) => {
            // Exit at once: shards that did start may be waiting for the ones that did not.
            eprintln!("hare: cannot start: {error}");
            std::process::exit(1);
        }
    };
    log_recovery(&broker);
    // The address line comes last: tests read up to it.
    let scheme = |tls: bool| if tls { "https" } else { "http" };
    if let Some(address) = broker.management_addr {
        println!(
            "hare management API on {}://{address}",
            scheme(cli.management_tls)
        );
    }
    if let Some(address) = broker.metrics_addr {
        println!(
            "hare metrics on {}://{address}/metrics",
            scheme(cli.metrics_tls)
        );
    }
    if let Some(address) = broker.tls_addr {
        println!("hare AMQPS (TLS) on {address}");
    }
    println!(
        "hare listening on {} (AMQP 0-9-1, {shards} shards)",
        broker.local_addr
    );
    let signal = wait_for_signal(&signals);
    tracing::info!(signal, "shutting down");
    broker.request_stop();
    broker.join();
    Ok(())
}

/// The TLS settings, loaded (an unreadable or invalid file stops the start, named), if
/// anything uses TLS.
fn tls_context(cli: &Cli) -> anyhow::Result<Option<std::sync::Arc<hare::tls::TlsContext>>> {
    let wanted = cli.tls_listen.is_some() || cli.management_tls || cli.metrics_tls;
    if !wanted {
        anyhow::ensure!(
            cli.tls_cert.is_none() && cli.tls_key.is_none(),
            "--tls-cert and --tls-key are used by --tls-listen, --management-tls or --metrics-tls; none is given"
        );
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (cli.tls_cert.clone(), cli.tls_key.clone()) else {
        anyhow::bail!(
            "TLS (--tls-listen, --management-tls, --metrics-tls) needs --tls-cert and --tls-key"
        );
    };
    let settings = hare::tls::TlsSettings {
        cert,
        key,
        ca: cli.tls_ca.clone(),
        verify_peer: cli.tls_verify_peer,
        fail_if_no_peer_cert: cli.tls_fail_if_no_peer_cert,
    };
    match hare::tls::TlsContext::load(settings) {
        Ok(context) => Ok(Some(std::sync::Arc::new(context))),
        Err(error) => {
            eprintln!("hare: cannot start: TLS: {error}");
            std::process::exit(1);
        }
    }
}

/// A flag's value, else the first of two environment variables that is set (containers set
/// RabbitMQ's names).
fn setting(flag: Option<String>, ours: &str, rabbitmq: &str) -> Option<String> {
    flag.or_else(|| std::env::var(ours).ok())
        .or_else(|| std::env::var(rabbitmq).ok())
}

fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset/sigaddset initialise it, and
    // pthread_sigmask only changes this thread's mask (inherited by threads spawned later).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal: libc::c_int = 0;
    // SAFETY: sigwait reads the initialised set and writes one int.
    unsafe {
        libc::sigwait(set, &mut signal);
    }
    signal
}
