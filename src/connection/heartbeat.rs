//! Heartbeats both ways: we send a heartbeat frame when we have written nothing for half the
//! negotiated interval, and drop a peer we have heard nothing at all from (any frame counts)
//! for two intervals. RabbitMQ closes the socket without a close frame in that case.

use std::rc::Rc;
use std::time::Duration;

use crate::connection::io::shutdown_socket;
use crate::connection::ConnectionShared;
use crate::protocol::write_heartbeat;

pub async fn run(connection: Rc<ConnectionShared>) {
    let interval = connection.state.borrow().heartbeat_interval;
    if interval.is_zero() {
        return;
    }
    let half = (interval / 2).max(Duration::from_millis(100));
    loop {
        glommio::timer::sleep(half).await;
        if connection.output.is_finished() {
            return;
        }
        if connection.output.last_write.get().elapsed() >= half {
            connection.output.write(write_heartbeat);
        }
        // A connection held by the memory or disk alarm is not read, so its peer's
        // heartbeats wait in the socket: RabbitMQ pauses this check while blocked too.
        if !connection.held.get() && connection.last_read.get().elapsed() > interval * 2 {
            tracing::info!(connection = %connection.id, peer = %connection.peer, "missed heartbeats from client, closing");
            shutdown_socket(connection.fd);
            return;
        }
    }
}
