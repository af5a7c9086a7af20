//! The broker: the shard runtime (`shard`) with the AMQP connection layer (`connection`) on
//! top. This is the one module that names both: it hands start-up the function that serves an
//! accepted socket, and every connection that function opens registers itself with its shard.

use std::rc::Rc;

use futures_lite::future::BoxedLocal;
use glommio::net::TcpStream;

use crate::config::Config;
use crate::connection;
use crate::shard::startup::{self, Broker, StartError};
use crate::shard::Shard;

/// Starts an AMQP 0-9-1 broker with `config`.
pub fn start(config: Config) -> Result<Broker, StartError> {
    startup::start(config, serve)
}

fn serve(shard: Rc<Shard>, stream: TcpStream) -> BoxedLocal<()> {
    Box::pin(connection::serve(shard, stream))
}
