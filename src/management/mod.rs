//! The management HTTP API (RabbitMQ 3.13-compatible, docs/management-api.md): hyper's HTTP/1
//! server on shard 0's executor, in the control plane's own task queue (fewer shares than the
//! data path, `shard::startup`), with a statistics collector beside it.
//!
//! It sits beside `connection` on top of the shard runtime and reaches the broker only through
//! `ShardMessage`s (statistics, closing a connection) and shard 0's read-only registry copy. It
//! never holds a `&mut Queue`, and nothing under `shard` names it: `server` hands start-up the
//! function that runs it.
//!
//! One file per resource (`overview`, `nodes`, `connections`, `channels`, `consumers`,
//! `exchanges`, `queues`, `bindings`, `health`, `whoami`, `vhosts`, `users`, `permissions`,
//! `policies`, `limits`, `definitions`; the writes on queues, exchanges and bindings in
//! `queue_actions`, `exchange_actions`, `binding_actions`), plus `router` (paths → handlers),
//! `body` (request bodies),
//! `response` (status codes and error bodies), `listing` (sort, filter, pages, columns),
//! `auth`, `dto` (shared JSON pieces), `stats` (the collector) and `http_io` (glommio ↔ hyper).
//! `ui` is the web UI at `/`, which reads and changes the broker through the same `/api`.
//! The metrics port serves `metrics` (its paths), which renders RabbitMQ's Prometheus families
//! (`prometheus`) in the text format (`exposition`).

pub mod auth;
pub mod binding_actions;
pub mod bindings;
pub mod body;
pub mod channels;
pub mod connections;
pub mod consumers;
pub mod definitions;
pub mod dto;
pub mod exchange_actions;
pub mod exchanges;
pub mod exposition;
pub mod health;
pub mod http_io;
pub mod limits;
pub mod listing;
pub mod metrics;
pub mod nodes;
pub mod overview;
pub mod permissions;
pub mod policies;
pub mod prometheus;
pub mod queue_actions;
pub mod queues;
pub mod response;
pub mod router;
pub mod stats;
pub mod ui;
pub mod user_limits;
pub mod users;
pub mod vhosts;
pub mod whoami;

use std::cell::Cell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use glommio::net::TcpListener;
use glommio::TaskQueueHandle;

use crate::shard::endpoint::ControlListeners;
use crate::shard::Shard;

/// HTTP connections served at once; more are closed as they arrive.
pub const HTTP_CONNECTIONS_MAX: usize = 256;

/// What every request handler reaches: shard 0, the collector, and facts about the node.
pub struct Context {
    pub shard: Rc<Shard>,
    pub collector: stats::Collector,
    pub started: Instant,
    /// This node's name (`hare@<hostname>`).
    pub node: String,
    /// Where the management API listens (for `listeners` and the port-listener health check).
    pub management_addr: Option<SocketAddr>,
    pub metrics_addr: Option<SocketAddr>,
    open_connections: Cell<usize>,
}

impl Context {
    pub fn new(
        shard: Rc<Shard>,
        management_addr: Option<SocketAddr>,
        metrics_addr: Option<SocketAddr>,
    ) -> Context {
        Context {
            shard,
            collector: stats::Collector::default(),
            started: Instant::now(),
            node: format!("hare@{}", nodes::hostname()),
            management_addr,
            metrics_addr,
            open_connections: Cell::new(0),
        }
    }
}

/// Which server a listener belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Management,
    /// The Prometheus endpoint's port (`metrics`).
    Metrics,
}

/// Runs the control plane until the shard shuts down.
pub async fn serve(shard: Rc<Shard>, listeners: ControlListeners) {
    let address = |listener: &Option<TcpListener>| {
        listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok())
    };
    let context = Rc::new(Context::new(
        shard.clone(),
        address(&listeners.management),
        address(&listeners.metrics),
    ));
    let queue = glommio::executor().current_task_queue();
    let spawn = |future: std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>| {
        if let Ok(task) = glommio::spawn_local_into(future, queue) {
            task.detach();
        }
    };
    spawn(Box::pin(sample_periodically(context.clone())));
    if let Some(listener) = listeners.metrics {
        spawn(Box::pin(accept_loop(
            context.clone(),
            listener,
            queue,
            Server::Metrics,
        )));
    }
    if let Some(listener) = listeners.management {
        accept_loop(context, listener, queue, Server::Management).await;
    }
}

/// Takes a sample of every shard's counters each `stats_interval`, for rates.
async fn sample_periodically(context: Rc<Context>) {
    let interval = context.shard.config.stats_interval;
    loop {
        let snapshot = stats::gather(&context.shard).await;
        context.collector.record(&snapshot, Instant::now());
        let slept = futures_lite::future::or(
            async {
                glommio::timer::sleep(interval).await;
                true
            },
            async {
                context.shard.shutdown.wait().await;
                false
            },
        )
        .await;
        if !slept {
            return;
        }
    }
}

async fn accept_loop(
    context: Rc<Context>,
    listener: TcpListener,
    queue: TaskQueueHandle,
    server: Server,
) {
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            context.shard.shutdown.wait().await;
            None
        })
        .await;
        let stream = match accepted {
            None => return,
            Some(Ok(stream)) => stream,
            Some(Err(error)) => {
                tracing::warn!(%error, "management accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        if context.open_connections.get() >= HTTP_CONNECTIONS_MAX {
            continue;
        }
        let Ok(peer) = stream.peer_addr() else {
            continue;
        };
        context
            .open_connections
            .set(context.open_connections.get() + 1);
        let context = context.clone();
        let task = glommio::spawn_local_into(
            async move {
                serve_http(&context, stream, peer, server).await;
                context
                    .open_connections
                    .set(context.open_connections.get() - 1);
            },
            queue,
        );
        if let Ok(task) = task {
            task.detach();
        }
    }
}

/// Serves one HTTP connection (keep-alive: any number of requests).
async fn serve_http(
    context: &Rc<Context>,
    stream: glommio::net::TcpStream,
    peer: SocketAddr,
    server: Server,
) {
    let config = &context.shard.config;
    let tls = match server {
        Server::Management => config.management_tls,
        Server::Metrics => config.metrics_tls,
    };
    let io = match config.tls.as_ref().filter(|_| tls) {
        None => http_io::HttpStream::new(stream),
        Some(context) => match http_io::HttpStream::tls(stream, context.server_config()).await {
            Ok(io) => io,
            Err(error) => {
                tracing::debug!(%error, %peer, "management HTTPS connection not opened");
                return;
            }
        },
    };
    let service = hyper::service::service_fn(|request| {
        let context = context.clone();
        async move {
            let response = match server {
                Server::Management => router::handle(&context, peer, request).await,
                Server::Metrics => metrics::handle(&context, request).await,
            };
            Ok::<_, Infallible>(response)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        // Needs a Send timer glommio cannot give; `http_io` bounds idleness instead.
        .header_read_timeout(None)
        .max_buf_size(64 * 1024)
        .serve_connection(io, service);
    if let Err(error) = connection.await {
        tracing::debug!(%error, %peer, "management HTTP connection ended");
    }
}
