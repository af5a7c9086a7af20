//! Start-up and shut-down: check that io_uring and enough locked memory are available, lock the
//! data directory, bind the listeners (waiting a bounded time for an address a broker that just
//! died still holds), create the shard mesh, start one glommio executor per shard, hand accepted
//! sockets to the least-loaded shard (which serves them with the `ServeConnection` start-up was
//! given), and stop everything when asked.
//!
//! The listener is a plain `std` socket (no SO_REUSEPORT: glommio's own `bind` sets it, and a
//! stray process on the same port would then silently take connections).

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::os::unix::io::{FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::shared_channel::{self, SharedReceiver, SharedSender};
use glommio::net::{AcceptedTcpStream, TcpListener};
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::ids::{ConnectionId, ShardId};
use crate::shard::endpoint::{
    ControlListeners, ForcedClose, IncomingConnection, Listener, MovedConnection, ServeConnection,
    ServeControl,
};
use crate::shard::inbox;
use crate::shard::mesh::{Batch, Mesh, MESH_CHANNEL_CAPACITY};
use crate::shard::message::ShardMessage;
use crate::shard::pressure::{Pressure, QueueMemoryScan};
use crate::shard::recovery::{self, ShardRecovery};
use crate::shard::resource_alarms::{self, ResourceAlarms};
use crate::shard::waker::{self, Ticker, WakeHandles, WakeReader};
use crate::shard::{
    definitions_transfer, descriptors, metadata_recovery, metadata_writer, queues, Shard,
};
use crate::vhost::definitions_json::DefinitionsJson;
use crate::vhost::metadata_record::MetadataSnapshot;
use hare_storage::MetadataLog;

/// Preemption timer (docs/ARCHITECTURE.md, Shards). glommio 0.9's 1 ms setting (better cross-shard
/// latency) makes executors park with runnable tasks on this kernel: a stress test of
/// cross-shard round trips stalled in about half its runs at 1 ms and in none at 100 ms, with
/// the wake pipes of `waker` in place either way. Long loops still yield after bounded work
/// (`DISPATCH_ROUND_MAX`, `MESH_BATCH_MAX`), which is what keeps other tasks prompt.
pub const PREEMPT_TIMER: Duration = Duration::from_millis(100);

/// Registered io_uring buffer memory per executor is never set below glommio's floor.
const IO_MEMORY_MIN_BYTES: usize = 64 * 1024;
const IO_MEMORY_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How long shutdown waits for clients to answer connection.close before exiting anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("io_uring is not available ({0}); Hare needs Linux 5.8+ with io_uring enabled (containers often block it with seccomp: allow io_uring_setup/io_uring_enter)")]
    IoUringUnavailable(std::io::Error),
    #[error("the locked-memory limit (ulimit -l) is {limit_bytes} bytes; Hare needs at least {needed_bytes} bytes for {shards} shards (raise it with `ulimit -l` or LimitMEMLOCK=)")]
    MemlockTooSmall {
        limit_bytes: u64,
        needed_bytes: u64,
        shards: usize,
    },
    #[error("cannot listen on {address}: {source}{}", waited_for(*.waited))]
    Listen {
        address: SocketAddr,
        source: std::io::Error,
        /// How long start-up kept trying while the address was in use (zero: it did not).
        waited: Duration,
    },
    #[error("cannot start shard executor: {0}")]
    Executor(#[source] glommio::GlommioError<()>),
    #[error("cannot start shard executor: a shard stopped before reporting its recovery")]
    ShardStopped,
    #[error("cannot create the shard wake-up pipes: {0}")]
    WakePipes(std::io::Error),
    #[error("cannot start the memory and disk monitor: {0}")]
    Monitor(std::io::Error),
    #[error(transparent)]
    DataDir(#[from] recovery::DataDirError),
    #[error("cannot recover shard {}'s log: {source}", shard.0)]
    Recovery {
        shard: ShardId,
        source: crate::shard::persistence::PersistenceError,
    },
    #[error(transparent)]
    Metadata(#[from] metadata_recovery::MetadataRecoveryError),
    #[error("cannot load definitions from {}: {reason}", .path.display())]
    LoadDefinitions {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("a TLS listener needs a certificate and a key (--tls-cert, --tls-key)")]
    TlsNotConfigured,
    #[error("cannot start the TLS certificate reload thread: {0}")]
    TlsReload(std::io::Error),
    #[error("the data directory was written with {written} shards; start with --shards {written} (changing the shard count of existing data is not supported yet)")]
    ShardCountChanged { written: u16 },
}

/// The end of a `StartError::Listen` message when start-up waited for the address.
fn waited_for(waited: Duration) -> String {
    if waited.is_zero() {
        return String::new();
    }
    format!(
        " (still in use after waiting {:.1} s: another program listens there)",
        waited.as_secs_f64()
    )
}

/// A running broker: where it listens, and how to stop it.
pub struct Broker {
    pub local_addr: SocketAddr,
    /// Where AMQP over TLS is accepted, if configured.
    pub tls_addr: Option<SocketAddr>,
    /// Where the management API and the metrics endpoint listen, if configured.
    pub management_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    threads: Vec<glommio::ExecutorJoinHandle<()>>,
    ticker: std::thread::JoinHandle<()>,
    ticker_stop: Arc<AtomicBool>,
    /// Measures memory and disk (`resource_alarms`); stops with the ticker.
    monitor: std::thread::JoinHandle<()>,
    /// What each shard recovered from its log at start-up.
    pub recovered: Vec<ShardRecovery>,
    _data_dir_lock: recovery::DataDirLock,
}

impl Broker {
    /// Asks every shard to close its connections (320 CONNECTION_FORCED) and stop.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Waits for every shard to finish.
    pub fn join(self) {
        for thread in self.threads {
            if let Err(error) = thread.join() {
                tracing::error!(?error, "shard executor failed");
            }
        }
        // The ticker runs until every shard is gone: a shard finishing its shutdown grace
        // period still needs its ticks.
        self.ticker_stop.store(true, Ordering::Release);
        let _ = self.ticker.join();
        let _ = self.monitor.join();
    }
}

/// The threads beside the shards: the ticker that pokes every shard, and the memory and disk
/// monitor; both stop when `stop` is set.
struct HelperThreads {
    ticker: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
    monitor: std::thread::JoinHandle<()>,
}

fn start_helper_threads(
    wake: &WakeHandles,
    alarms: Arc<ResourceAlarms>,
    config: &Config,
) -> Result<HelperThreads, StartError> {
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = wake
        .start_ticker(stop.clone())
        .map_err(StartError::WakePipes)?;
    let monitor = resource_alarms::start_monitor(alarms, config.data_dir.clone(), stop.clone())
        .map_err(StartError::Monitor)?;
    Ok(HelperThreads {
        ticker,
        stop,
        monitor,
    })
}

/// Locks the data directory and makes its path absolute: glommio opens a relative directory
/// path against no directory descriptor (EBADF); the directory exists once it is locked.
fn lock_data_dir(config: &mut Config) -> Result<recovery::DataDirLock, StartError> {
    let lock = recovery::lock_data_dir(&config.data_dir)?;
    config.data_dir =
        std::fs::canonicalize(&config.data_dir).map_err(|source| recovery::DataDirError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
    Ok(lock)
}

/// Checks the host, binds the listeners and starts the shards; every shard serves the sockets
/// it is handed with `serve`, and shard 0 serves the control plane with `control`.
pub fn start(
    mut config: Config,
    serve: ServeConnection,
    control: ServeControl,
) -> Result<Broker, StartError> {
    assert!(config.shards >= 1);
    assert!(config.shards <= usize::from(u16::MAX));
    check_io_uring()?;
    check_tls(&config)?;
    let io_memory_bytes = io_memory_per_executor(config.shards)?;
    let data_dir_lock = lock_data_dir(&mut config)?;
    let metadata = open_metadata(&config)?;
    let mut metadata_log = Some(metadata.log);
    let definitions = Arc::new(metadata.snapshot);
    let mut load_definitions = read_definitions_file(&config)?;
    // The data directory lock proves no live Hare uses this directory; an address still in
    // use now is most likely held by the broker that used it and just died, so each bind
    // waits for it until one shared deadline.
    let bind_deadline = Instant::now() + config.listen_retry;
    let bind = |address| bind_listener(address, bind_deadline);
    let (listener, local_addr) = bind(config.listen)?;
    let mut listener_fd = Some(listener.into_raw_fd());
    let tls_listener = config.tls_listen.map(bind).transpose()?;
    let tls_addr = tls_listener.as_ref().map(|(_, address)| *address);
    let mut tls_listener_fd = tls_listener.map(|(listener, _)| listener.into_raw_fd());
    let management = config.management_listen.map(bind).transpose()?;
    let metrics = config.metrics_listen.map(bind).transpose()?;
    let management_addr = management.as_ref().map(|(_, address)| *address);
    let metrics_addr = metrics.as_ref().map(|(_, address)| *address);
    // Every shard sees the addresses actually bound (port 0 picks one): the management API
    // reports them and checks them in its port-listener health check.
    config.listen = local_addr;
    config.tls_listen = tls_addr;
    config.management_listen = management_addr;
    config.metrics_listen = metrics_addr;
    let mut control_fds = Some(ControlFds {
        management: management.map(|(listener, _)| listener.into_raw_fd()),
        metrics: metrics.map(|(listener, _)| listener.into_raw_fd()),
    });

    let shard_count = config.shards;
    let stop = Arc::new(AtomicBool::new(false));
    let pressure = Arc::new(Pressure::new(shard_count));
    let alarms = Arc::new(ResourceAlarms::new(
        config.memory_limit_bytes(),
        config.disk_free_limit,
    ));
    let (wake, wake_readers) = waker::wake_pipes(shard_count).map_err(StartError::WakePipes)?;
    let mut threads = Vec::with_capacity(shard_count);
    // Start-up only: each shard reports once, after its recovery, to this thread.
    let (ready_sender, ready_receiver) = std::sync::mpsc::channel();
    for (index, (mesh_ends, wake_reader)) in mesh_ends(shard_count)
        .into_iter()
        .zip(wake_readers)
        .enumerate()
    {
        let placement = if config.pin_shards {
            Placement::Fixed(index % num_cpus())
        } else {
            Placement::Unbound
        };
        let start = ShardStart {
            id: ShardId(u16::try_from(index).expect("checked above")),
            config: config.clone(),
            mesh_ends,
            wake: wake.clone(),
            wake_reader,
            listener_fd: if index == 0 { listener_fd.take() } else { None },
            tls_listener_fd: if index == 0 {
                tls_listener_fd.take()
            } else {
                None
            },
            control_fds: if index == 0 { control_fds.take() } else { None },
            definitions: definitions.clone(),
            metadata_log: metadata_log.take(),
            load_definitions: load_definitions.take(),
            stop: stop.clone(),
            ready: ready_sender.clone(),
            pressure: pressure.clone(),
            alarms: alarms.clone(),
            serve,
            control,
        };
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("hare-shard-{index}"))
            .io_memory(io_memory_bytes)
            .preempt_timer(PREEMPT_TIMER)
            .spawn(move || run_shard(start))
            .map_err(StartError::Executor)?;
        threads.push(handle);
    }
    let helpers = start_helper_threads(&wake, alarms, &config)?;
    drop(ready_sender);
    let recovered = wait_for_recovery(&ready_receiver, shard_count, &stop)?;
    Ok(Broker {
        local_addr,
        tls_addr,
        management_addr,
        metrics_addr,
        stop,
        threads,
        ticker: helpers.ticker,
        ticker_stop: helpers.stop,
        monitor: helpers.monitor,
        recovered,
        _data_dir_lock: data_dir_lock,
    })
}

/// `--load-definitions`: read and parsed before any executor runs, so a bad file stops the
/// start at once (RabbitMQ's `load_definitions` refuses to boot on one too).
fn read_definitions_file(config: &Config) -> Result<Option<DefinitionsJson>, StartError> {
    let Some(path) = &config.load_definitions else {
        return Ok(None);
    };
    let failed = |reason: String| StartError::LoadDefinitions {
        path: path.clone(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|error| failed(error.to_string()))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| failed(error.to_string()))
}

/// Opens the metadata log, checks it was written for this many shards, and logs what it held.
/// Start-up only: the definitions are read before any executor runs.
fn open_metadata(config: &Config) -> Result<metadata_recovery::OpenedMetadata, StartError> {
    let metadata = metadata_recovery::open_metadata(config)?;
    if usize::from(metadata.snapshot.shard_count) != config.shards {
        return Err(StartError::ShardCountChanged {
            written: metadata.snapshot.shard_count,
        });
    }
    let summary = &metadata.summary;
    tracing::info!(
        generation = summary.generation,
        changes = summary.changes_replayed,
        torn_tail_bytes = summary.torn_tail_bytes,
        converted_definitions_file = summary.converted_definitions_file,
        queues = metadata
            .snapshot
            .vhosts
            .iter()
            .map(|vhost| vhost.queues.len())
            .sum::<usize>(),
        bindings = metadata
            .snapshot
            .vhosts
            .iter()
            .map(|vhost| vhost.bindings.len())
            .sum::<usize>(),
        duration_ms = summary.duration.as_millis() as u64,
        "metadata recovered"
    );
    Ok(metadata)
}

/// First and longest pause between two attempts to bind an address in use.
const BIND_BACKOFF_FIRST: Duration = Duration::from_millis(20);
const BIND_BACKOFF_MAX: Duration = Duration::from_millis(250);

/// Binds a listener, returning it with the address it got (the port, for port 0). While the
/// address is in use (EADDRINUSE) it tries again, with a growing pause, until `deadline`: a
/// killed broker's listening socket stays open until the kernel has torn down its io_uring
/// instance, some milliseconds after the process is gone. Any other error fails at once.
///
/// std's bind sets SO_REUSEADDR, which lets the port be reused at once from connections in
/// TIME_WAIT but never while any socket listens on it; and Hare never sets SO_REUSEPORT, so
/// a live program on the port makes this fail at the deadline rather than share it.
fn bind_listener(
    address: SocketAddr,
    deadline: Instant,
) -> Result<(StdTcpListener, SocketAddr), StartError> {
    let started = Instant::now();
    let mut pause = BIND_BACKOFF_FIRST;
    let mut waiting = false;
    let listener = loop {
        match StdTcpListener::bind(address) {
            Ok(listener) => break listener,
            Err(source) if source.kind() == ErrorKind::AddrInUse && Instant::now() < deadline => {
                if !waiting {
                    waiting = true;
                    tracing::warn!(
                        %address,
                        wait_secs = deadline.saturating_duration_since(started).as_secs_f64(),
                        "address in use (a broker that just stopped may still hold it); waiting for it"
                    );
                }
                std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
                pause = (pause * 2).min(BIND_BACKOFF_MAX);
            }
            Err(source) => {
                let waited = if waiting {
                    started.elapsed()
                } else {
                    Duration::ZERO
                };
                return Err(StartError::Listen {
                    address,
                    source,
                    waited,
                });
            }
        }
    };
    if waiting {
        tracing::info!(
            %address,
            waited_ms = started.elapsed().as_millis() as u64,
            "address free again; listening"
        );
    }
    let local_addr = listener.local_addr().map_err(|source| StartError::Listen {
        address,
        source,
        waited: Duration::ZERO,
    })?;
    Ok((listener, local_addr))
}

/// One bounded channel for every ordered pair of shards: shard `i` gets its senders to every
/// other shard and its receivers from every other shard, `None` at its own index.
fn mesh_ends(shard_count: usize) -> Vec<MeshEnds> {
    // senders[from][to] and receivers[to][from], for every ordered pair from != to.
    let mut senders: Vec<Vec<Option<SharedSender<Batch>>>> = (0..shard_count)
        .map(|_| (0..shard_count).map(|_| None).collect())
        .collect();
    let mut receivers: Vec<Vec<Option<SharedReceiver<Batch>>>> = (0..shard_count)
        .map(|_| (0..shard_count).map(|_| None).collect())
        .collect();
    for from in 0..shard_count {
        for to in 0..shard_count {
            if from != to {
                let (sender, receiver) = shared_channel::new_bounded(MESH_CHANNEL_CAPACITY);
                senders[from][to] = Some(sender);
                receivers[to][from] = Some(receiver);
            }
        }
    }
    senders
        .into_iter()
        .zip(receivers)
        .map(|(senders, receivers)| MeshEnds { senders, receivers })
        .collect()
}

/// Waits for every shard to report its recovery, in shard order; the first failure stops
/// them all.
fn wait_for_recovery(
    ready: &ReadyReceiver,
    shard_count: usize,
    stop: &AtomicBool,
) -> Result<Vec<ShardRecovery>, StartError> {
    let mut recovered = Vec::with_capacity(shard_count);
    for _ in 0..shard_count {
        match ready.recv() {
            Ok(Ok(summary)) => recovered.push(summary),
            Ok(Err(error)) => {
                stop.store(true, Ordering::Release);
                return Err(error);
            }
            Err(_) => {
                stop.store(true, Ordering::Release);
                return Err(StartError::ShardStopped);
            }
        }
    }
    recovered.sort_by_key(|summary| summary.shard);
    Ok(recovered)
}

/// Each shard's recovery report: what it recovered, or `StartError::Recovery`.
type ReadySender = std::sync::mpsc::Sender<Result<ShardRecovery, StartError>>;
type ReadyReceiver = std::sync::mpsc::Receiver<Result<ShardRecovery, StartError>>;

/// One shard's ends of the mesh channels, indexed by the other shard; `None` at its own index.
struct MeshEnds {
    senders: Vec<Option<SharedSender<Batch>>>,
    receivers: Vec<Option<SharedReceiver<Batch>>>,
}

/// Everything one shard's executor starts from, moved into its thread.
struct ShardStart {
    id: ShardId,
    config: Config,
    mesh_ends: MeshEnds,
    wake: WakeHandles,
    wake_reader: WakeReader,
    /// The listening socket, for the one shard that accepts.
    listener_fd: Option<RawFd>,
    /// The AMQPS listening socket, if configured, for the same shard.
    tls_listener_fd: Option<RawFd>,
    /// The control plane's listening sockets, for shard 0.
    control_fds: Option<ControlFds>,
    /// The durable metadata every shard installs before it serves.
    definitions: Arc<MetadataSnapshot>,
    /// The metadata log, for the metadata shard, which writes it.
    metadata_log: Option<MetadataLog>,
    /// `--load-definitions`, for the metadata shard, which imports it before it accepts.
    load_definitions: Option<DefinitionsJson>,
    /// Set by `Broker::request_stop`.
    stop: Arc<AtomicBool>,
    /// Where the shard reports its recovery.
    ready: ReadySender,
    pressure: Arc<Pressure>,
    alarms: Arc<ResourceAlarms>,
    serve: ServeConnection,
    control: ServeControl,
}

/// Bound control-plane sockets whose ownership `start` gave up with `into_raw_fd`.
struct ControlFds {
    management: Option<RawFd>,
    metrics: Option<RawFd>,
}

/// Task-queue shares of the control plane on shard 0, against the default queue's 1000: an
/// expensive listing gets a fifth of the core while the data path is busy, all of it when idle.
const CONTROL_SHARES: usize = 200;

async fn run_shard(start: ShardStart) {
    let ShardStart {
        id,
        config,
        mesh_ends: MeshEnds { senders, receivers },
        wake,
        wake_reader,
        listener_fd,
        tls_listener_fd,
        control_fds,
        definitions,
        metadata_log,
        load_definitions,
        stop,
        ready,
        pressure,
        alarms,
        serve,
        control,
    } = start;
    let shard_count = senders.len();
    let ticker = match Ticker::open(wake_reader).await {
        Ok(ticker) => Rc::new(ticker),
        Err(error) => {
            tracing::error!(%error, shard = %id, "cannot open the shard's wake-up pipe");
            return;
        }
    };
    // Recovery and loading await disk reads and timers before the housekeeping loop reads
    // the wake pipe: a read kept pending meanwhile bounds a lost wake-up there by a tick too
    // (docs/ARCHITECTURE.md, Shards, Wake pipes). Dropping the task cancels it.
    let start_ticks = {
        let ticker = ticker.clone();
        glommio::spawn_local(async move {
            loop {
                ticker.tick().await;
            }
        })
    };
    let mesh = Rc::new(Mesh::new(id, shard_count, wake, pressure, alarms));
    let shard = Rc::new(Shard::new(id, Rc::new(config), mesh.clone(), serve));
    install_definitions(&shard, &definitions);
    drop(definitions);
    crate::shard::delayed::install_stores(&shard);
    if let Some(log) = metadata_log {
        assert_eq!(id, ShardId::METADATA, "the metadata shard writes the log");
        glommio::spawn_local(metadata_writer::run_metadata_writer(shard.clone(), log)).detach();
    }
    // Recover before serving: nothing may reach a queue before its messages are back.
    let recovered = match recovery::recover(&shard).await {
        Ok(summary) => summary,
        Err(source) => {
            let _ = ready.send(Err(StartError::Recovery { shard: id, source }));
            return;
        }
    };

    // Connecting waits for the peer side, so connect every endpoint concurrently.
    let mut connecting = Vec::new();
    for (target, sender) in senders.into_iter().enumerate() {
        if let Some(sender) = sender {
            let mesh = mesh.clone();
            let target = ShardId(u16::try_from(target).expect("shard count fits u16"));
            connecting.push(glommio::spawn_local(async move {
                let sender = sender.connect().await;
                mesh.run_flusher(target, sender).await;
            }));
        }
    }
    for receiver in receivers.into_iter().flatten() {
        let shard = shard.clone();
        connecting.push(glommio::spawn_local(async move {
            let receiver = receiver.connect().await;
            Mesh::run_inbox(receiver, |batch| inbox::handle_batch(&shard, batch)).await;
        }));
    }
    {
        let shard = shard.clone();
        connecting.push(glommio::spawn_local(async move {
            let local = shard.mesh.clone();
            local
                .run_local(|batch| inbox::handle_batch(&shard, batch))
                .await;
        }));
    }
    glommio::spawn_local(queues::run_dispatcher(shard.clone())).detach();
    glommio::spawn_local(crate::shard::fetcher::run_fetcher(shard.clone())).detach();
    glommio::spawn_local(crate::shard::timers::run_timers(shard.clone())).detach();
    for task in connecting {
        task.detach();
    }
    if let Err(error) = load(&shard, load_definitions).await {
        let _ = ready.send(Err(error));
        return;
    }
    let _ = ready.send(Ok(recovered));
    let listeners = [
        (listener_fd, Listener::Amqp),
        (tls_listener_fd, Listener::Amqps),
    ];
    serve_clients(&shard, listeners, control_fds, control);
    drop(start_ticks);

    housekeeping(&shard, &ticker, &stop).await;
    shut_down(&shard, &ticker).await;
}

/// The housekeeping tick, until the stop request: measures queue memory (publisher flow
/// control) and acts on memory and disk alarm changes.
async fn housekeeping(shard: &Rc<Shard>, ticker: &Ticker, stop: &AtomicBool) {
    let mut memory = QueueMemoryScan::default();
    while !stop.load(Ordering::Acquire) {
        ticker.tick().await;
        let generation = shard.mesh.alarms.generation();
        if generation != shard.alarm_generation_seen.get() {
            shard.alarm_generation_seen.set(generation);
            shard.alarms_changed();
        }
        let queued_bytes = memory.queued_bytes(&shard.queues.borrow());
        shard.mesh.pressure.update(shard.id, queued_bytes);
        // Raised by appends as they cross the mark (`Shard::note_appended`), lowered here.
        let behind = shard
            .installed_persistence()
            .is_some_and(|persistence| persistence.write_buffer_high());
        shard.mesh.pressure.set_disk_behind(shard.id, behind);
    }
}

/// Starts accepting AMQP clients and the control plane, on the shard that holds the listeners.
fn serve_clients(
    shard: &Rc<Shard>,
    listeners: [(Option<RawFd>, Listener); 2],
    control_fds: Option<ControlFds>,
    control: ServeControl,
) {
    for (fd, kind) in listeners {
        let Some(fd) = fd else { continue };
        // SAFETY: `fd` is a bound, listening socket whose ownership `start` gave up with
        // `into_raw_fd`; nothing else uses or closes it.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        glommio::spawn_local(accept_loop(shard.clone(), listener, kind)).detach();
        if kind == Listener::Amqp {
            glommio::spawn_local(descriptors::watch(shard.clone())).detach();
        }
    }
    if let Some(fds) = control_fds {
        start_control(shard, fds, control);
    }
}

/// Spawns the control plane on this shard in its own, lower-share task queue.
fn start_control(shard: &Rc<Shard>, fds: ControlFds, control: ServeControl) {
    // SAFETY: each fd is a bound, listening socket whose ownership `start` gave up with
    // `into_raw_fd`; nothing else uses or closes it.
    let listen = |fd: RawFd| unsafe { TcpListener::from_raw_fd(fd) };
    let listeners = ControlListeners {
        management: fds.management.map(listen),
        metrics: fds.metrics.map(listen),
    };
    let queue = glommio::executor().create_task_queue(
        glommio::Shares::Static(CONTROL_SHARES),
        glommio::Latency::NotImportant,
        "control",
    );
    let task = glommio::spawn_local_into(control(shard.clone(), listeners), queue);
    match task {
        Ok(task) => {
            task.detach();
        }
        Err(error) => tracing::error!(%error, "cannot start the management API"),
    }
}

/// Imports `--load-definitions` (metadata shard only) before the shard accepts clients.
async fn load(shard: &Shard, definitions: Option<DefinitionsJson>) -> Result<(), StartError> {
    let Some(definitions) = definitions else {
        return Ok(());
    };
    definitions_transfer::import(shard, definitions, None)
        .await
        .map_err(|error| StartError::LoadDefinitions {
            path: shard.config.load_definitions.clone().unwrap_or_default(),
            reason: error.0,
        })
}

async fn shut_down(shard: &Rc<Shard>, ticker: &Ticker) {
    shard.shutting_down.set(true);
    shard.shutdown.notify_all();
    for endpoint in shard.connections.all() {
        endpoint.close_forced(ForcedClose::Shutdown);
    }
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while !shard.connections.is_empty() && std::time::Instant::now() < deadline {
        ticker.tick().await;
    }
    // Acks and rejects are appended without an fdatasync of their own; a clean stop makes
    // them durable so settled messages do not come back after the restart.
    if let Some(persistence) = shard.installed_persistence() {
        if let Err(error) = persistence.sync_all().await {
            tracing::warn!(%error, shard = %shard.id, "could not sync the log at shutdown");
        }
    }
}

async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, kind: Listener) {
    loop {
        let accepted =
            futures_lite::future::or(async { Some(listener.shared_accept().await) }, async {
                shard.shutdown.wait().await;
                None
            })
            .await;
        match accepted {
            None => return,
            Some(Ok(stream)) => hand_off(&shard, stream, kind),
            Some(Err(error)) => {
                // Running out of file descriptors must not spin (`descriptors.rs`).
                let error = std::io::Error::from(error);
                glommio::timer::sleep(descriptors::accept_failed(&error)).await;
            }
        }
    }
}

/// Gives a new socket to the shard with the fewest connections; it owns it for life.
fn hand_off(shard: &Rc<Shard>, stream: AcceptedTcpStream, listener: Listener) {
    let target = {
        let mut counts = shard.connection_counts.borrow_mut();
        let (index, _) = counts
            .iter()
            .enumerate()
            .min_by_key(|(index, count)| (**count, *index))
            .expect("at least one shard");
        counts[index] += 1;
        ShardId(u16::try_from(index).expect("shard count fits u16"))
    };
    if target == shard.id {
        serve_accepted(shard, stream, listener);
    } else {
        shard.send(target, ShardMessage::Accepted(stream, listener));
    }
}

/// Takes ownership of an accepted socket on this shard and serves it.
pub fn serve_accepted(shard: &Rc<Shard>, stream: AcceptedTcpStream, listener: Listener) {
    serve_incoming(
        shard,
        IncomingConnection::Accepted(stream.bind_to_executor(), listener),
    );
}

/// Serves a connection another shard moved here. Its place in the counts moves with it
/// (`connection_moved`, told by the connection layer once it has its new id).
pub fn serve_moved(shard: &Rc<Shard>, moved: MovedConnection) {
    serve_incoming(shard, IncomingConnection::Moved(moved));
}

/// On the metadata shard (the caller sends `ShardMessage::ConnectionMoved` from any other):
/// the connection `from` lives on as `to`. Its old shard reports `from`'s end as any
/// connection's end; `to`'s shard counts one more.
pub fn connection_moved(shard: &Shard, from: ConnectionId, to: ConnectionId, channels: u32) {
    if shard.id != ShardId::METADATA {
        shard.send(
            ShardId::METADATA,
            ShardMessage::ConnectionMoved { from, to, channels },
        );
        return;
    }
    if let Some(count) = shard
        .connection_counts
        .borrow_mut()
        .get_mut(to.shard().index())
    {
        *count += 1;
    }
    shard.vhost_connections.rename(from, to, channels);
}

fn serve_incoming(shard: &Rc<Shard>, incoming: IncomingConnection) {
    let shard = shard.clone();
    let serve = shard.serve_connection;
    glommio::spawn_local(async move {
        serve(shard.clone(), incoming).await;
        if shard.id == ShardId::METADATA {
            let mut counts = shard.connection_counts.borrow_mut();
            counts[0] = counts[0].saturating_sub(1);
        } else {
            shard.send(
                ShardId::METADATA,
                ShardMessage::ConnectionEnded { shard: shard.id },
            );
        }
    })
    .detach();
}

/// A TLS listener needs the certificate settings.
fn check_tls(config: &Config) -> Result<(), StartError> {
    let wanted = config.tls_listen.is_some() || config.management_tls || config.metrics_tls;
    if wanted && config.tls.is_none() {
        return Err(StartError::TlsNotConfigured);
    }
    Ok(())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Fails with a clear message when the kernel or a sandbox refuses io_uring.
fn check_io_uring() -> Result<(), StartError> {
    // io_uring_params is 120 bytes on every kernel that has io_uring.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup reads and writes exactly one io_uring_params struct, which
    // `params` provides, zeroed as the kernel requires.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4_u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(StartError::IoUringUnavailable(
            std::io::Error::last_os_error(),
        ));
    }
    let fd = i32::try_from(fd).expect("file descriptors fit i32");
    // SAFETY: `fd` was just returned by io_uring_setup and is owned by nobody else.
    unsafe { libc::close(fd) };
    Ok(())
}

/// glommio registers its io memory in 3 rings per executor; all of it must fit under the
/// locked-memory limit (docs/ARCHITECTURE.md, Shards).
fn io_memory_per_executor(shards: usize) -> Result<usize, StartError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into `limit`.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if status != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return Ok(IO_MEMORY_MAX_BYTES);
    }
    let limit_bytes = limit.rlim_cur;
    let rings = 3 * u64::try_from(shards).expect("shard count fits u64");
    // Leave a quarter for the rings themselves and anything else that locks memory.
    let per_executor = limit_bytes / 4 * 3 / rings;
    let needed_bytes = rings * IO_MEMORY_MIN_BYTES as u64 * 4 / 3;
    if per_executor < IO_MEMORY_MIN_BYTES as u64 {
        return Err(StartError::MemlockTooSmall {
            limit_bytes,
            needed_bytes,
            shards,
        });
    }
    let per_executor = usize::try_from(per_executor).unwrap_or(IO_MEMORY_MAX_BYTES);
    // Whole pages, as glommio rounds up anyway.
    Ok((per_executor.min(IO_MEMORY_MAX_BYTES) / 4096) * 4096)
}

/// Rebuilds the durable metadata on this shard's copy, and the runtimes of its durable queues.
fn install_definitions(shard: &Rc<Shard>, snapshot: &MetadataSnapshot) {
    let document = snapshot
        .access
        .as_ref()
        .expect("start-up installs the default access state");
    let access = crate::vhost::access::AccessState::from_document(document)
        .expect("replay checked the access state");
    shard.registry.borrow_mut().install_access(access);
    for definitions in &snapshot.vhosts {
        let deltas = definitions.deltas();
        {
            let mut registry = shard.registry.borrow_mut();
            let vhost = registry
                .vhost_mut(&definitions.vhost)
                .expect("replay checked that the snapshot's vhosts exist");
            for delta in &deltas {
                vhost.apply(delta);
            }
        }
        queues::install_declared(shard, &definitions.vhost, &deltas);
    }
    shard.next_metadata_id.set(
        snapshot
            .next_id
            .max(crate::vhost::Registry::FIRST_DYNAMIC_ID),
    );
}
