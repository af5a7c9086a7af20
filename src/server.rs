//! The broker: the shard runtime (`shard`) with the AMQP connection layer (`connection`) and
//! the management API (`management`) on top. This is the one module that names them all: it
//! hands start-up the function that serves an accepted socket (every connection it opens
//! registers itself with its shard) and the one that serves the control plane on shard 0.

use std::rc::Rc;

use futures_lite::future::BoxedLocal;

use crate::config::Config;
use crate::connection;
use crate::management;
use crate::shard::endpoint::{ControlListeners, IncomingConnection};
use crate::shard::startup::{self, Broker, StartError};
use crate::shard::Shard;

/// Starts an AMQP 0-9-1 broker with `config`.
pub fn start(config: Config) -> Result<Broker, StartError> {
    if let Some(tls) = &config.tls {
        crate::tls::reload::watch(tls).map_err(StartError::TlsReload)?;
    }
    startup::start(config, serve, serve_control)
}

fn serve_control(shard: Rc<Shard>, listeners: ControlListeners) -> BoxedLocal<()> {
    Box::pin(management::serve(shard, listeners))
}

fn serve(shard: Rc<Shard>, incoming: IncomingConnection) -> BoxedLocal<()> {
    Box::pin(connection::serve(shard, incoming))
}
