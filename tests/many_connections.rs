//! A shard accepts connections for as long as it runs: more than 32,767 of them in a row, the
//! count at which a waker the accept loop used to leave behind on every accepted socket
//! overflowed glommio's task reference count and panicked the shard (found by the
//! `connection_state` fuzz target, docs/fuzzing.md).

mod common;

use std::os::unix::io::AsRawFd;

use common::raw::RawClient;
use common::Broker;

/// One past glommio's task reference count limit, with room to spare.
const CONNECTIONS: usize = 33_000;

/// Closes with a reset instead of a FIN: 33,000 sockets in TIME_WAIT would use up the
/// loopback ports.
fn reset_on_close(client: &RawClient) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid descriptor and a pointer to a live `linger` of the size passed.
    let result = unsafe {
        libc::setsockopt(
            client.stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::linger>()).expect("size"),
        )
    };
    assert_eq!(result, 0, "SO_LINGER");
}

#[test]
fn one_shard_accepts_more_than_32767_connections() {
    let broker = Broker::start(1);
    for _ in 0..CONNECTIONS {
        // connection.start proves the accept loop took the socket before the next connect,
        // so that it waits (and registers its wakers) once per connection.
        let mut client = RawClient::connect(broker.addr);
        reset_on_close(&client);
        client.send_protocol_header();
        client.expect_start();
    }
    let mut witness = RawClient::witness(broker.addr);
    witness.assert_serving();
}
