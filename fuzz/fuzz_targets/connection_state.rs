//! Arbitrary client frame sequences after a valid handshake → the connection state machine
//! (`hare::connection`): method dispatch, channel state, content assembly, confirms and
//! transactions, basic.* bookkeeping, and the queues, exchanges and bindings behind them.
//!
//! The state machine needs a shard and a socket, so the real broker runs in this process:
//! started once (`hare::server::start`, two shards, so that connections also move between
//! shards, a data directory in /dev/shm) and kept for the whole fuzzing run. Each input is a
//! fresh TCP connection on loopback: the handshake, the input's frames (`connection_frames.rs`),
//! connection.close, all written at once, then the write side shut. The broker must end the
//! connection cleanly, answering with close-ok or with a connection.close of its own, within
//! `ANSWER_TIMEOUT`; it must never close the socket without a word, hang or panic (a panic on
//! a shard thread aborts this process through libFuzzer's panic hook). Every
//! `CLEANUP_EVERY` inputs a connection deletes the queues and exchanges inputs can name, so
//! what the broker holds stays bounded.
#![no_main]

use bytes::BytesMut;
use hare::config::{Config, MemoryWatermark};
use hare::protocol::*;
use libfuzzer_sys::fuzz_target;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

#[path = "connection_frames.rs"]
mod connection_frames;

/// Longest wait for the broker to end a connection; far above any answer's time, so that
/// only a connection the broker forgot reaches it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(20);
const CLEANUP_EVERY: u64 = 256;
const FRAME_MAX: u32 = 131_072;

fn broker() -> SocketAddr {
    static BROKER: OnceLock<SocketAddr> = OnceLock::new();
    *BROKER.get_or_init(|| {
        remove_stale_data_dirs();
        let data_dir = format!("/dev/shm/hare-fuzz-connection-{}", std::process::id());
        let _ = std::fs::remove_dir_all(&data_dir);
        let config = Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            shards: 2,
            frame_max: FRAME_MAX,
            segment_size_bytes: 1 << 20,
            // The fuzzing process's memory (address sanitizer) and /dev/shm must not raise
            // an alarm: a blocked publisher's socket is not read, and its input would hang.
            memory_high_watermark: MemoryWatermark::Absolute(u64::MAX / 2),
            disk_free_limit: 0,
            close_timeout: Duration::from_secs(2),
            ..Config::default()
        };
        let broker = hare::server::start(config).expect("broker starts");
        let address = broker.local_addr;
        // Runs until the process ends.
        std::mem::forget(broker);
        address
    })
}

/// Data directories of fuzzing processes that are gone.
fn remove_stale_data_dirs() {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("hare-fuzz-connection-") {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// Protocol header, start-ok (PLAIN guest/guest), tune-ok and open of "/", without waiting
/// for the broker's side: it reads them in order all the same.
fn handshake(out: &mut Vec<u8>) {
    out.extend_from_slice(&PROTOCOL_HEADER);
    let mut capabilities = FieldTable::new();
    for capability in [
        "publisher_confirms",
        "consumer_cancel_notify",
        "basic.nack",
        "connection.blocked",
        "authentication_failure_close",
    ] {
        capabilities.insert(ShortStr::from_static(capability), FieldValue::Bool(true));
    }
    let mut client_properties = FieldTable::new();
    client_properties.insert(
        ShortStr::from_static("capabilities"),
        FieldValue::Table(capabilities),
    );
    let methods = [
        Method::ConnectionStartOk(ConnectionStartOk {
            client_properties,
            mechanism: ShortStr::from_static("PLAIN"),
            response: LongStr::from_static("\0guest\0guest"),
            locale: ShortStr::from_static("en_US"),
        }),
        Method::ConnectionTuneOk(ConnectionTuneOk {
            channel_max: 16,
            frame_max: FRAME_MAX,
            heartbeat: 0,
        }),
        Method::ConnectionOpen(ConnectionOpen {
            virtual_host: ShortStr::from_static("/"),
            capabilities: ShortStr::from_static(""),
            insist: false,
        }),
    ];
    for method in &methods {
        write_method_frame(out, 0, method);
    }
}

/// How the broker ended a connection.
#[derive(Debug, PartialEq)]
enum End {
    CloseOk,
    Close(u16),
    /// The socket closed without a word: allowed only when the input ended in the middle of a
    /// frame, so that the broker read end-of-file where the rest of a frame should be (as
    /// RabbitMQ, it then just closes).
    MidFrameEof,
}

/// Whether `stream` (the frames after the handshake) ends inside a frame, every frame before
/// it well-framed; a framing error earlier must be answered with a connection.close.
fn ends_mid_frame(mut stream: &[u8]) -> bool {
    loop {
        match scan_frame(stream, FRAME_MAX) {
            Ok(Some((_, length))) => stream = &stream[length..],
            Ok(None) => return !stream.is_empty(),
            Err(_) => return false,
        }
    }
}

/// Runs one connection: the handshake, `frames`, connection.close; returns how it ended.
fn converse(frames: &[u8]) -> End {
    let mut out = Vec::with_capacity(frames.len() + 512);
    handshake(&mut out);
    let handshake_length = out.len();
    out.extend_from_slice(frames);
    let close = ConnectionClose {
        reply_code: 200,
        reply_text: ShortStr::from_static("done"),
        class_id: 0,
        method_id: 0,
    };
    write_method_frame(&mut out, 0, &Method::ConnectionClose(close));
    let frames_and_close = out.len() - handshake_length;

    trace(">", frames);
    let mut stream = TcpStream::connect(broker()).expect("connect to the broker");
    stream.set_read_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
    // Reset on drop: a million closed connections in TIME_WAIT would use up the ports.
    socket_linger_zero(&stream);
    // The broker may have ended the connection before reading all of it (its answer tells).
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(Shutdown::Write);
    let mid_frame = ends_mid_frame(&out[out.len() - frames_and_close..]);
    read_end(&mut stream, mid_frame)
}

/// Reads the broker's frames until it closes the connection.
fn read_end(stream: &mut TcpStream, mid_frame: bool) -> End {
    let mut buffer = BytesMut::with_capacity(64 * 1024);
    let mut header = [0u8; 8];
    let mut read = 0;
    // connection.start comes first; the header of a broker that refuses the protocol
    // header would be an error of ours.
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) if mid_frame => return End::MidFrameEof,
            Ok(0) => panic!("the broker closed the socket without connection.close"),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("no end of the connection after {ANSWER_TIMEOUT:?}")
            }
            Err(error) if error.kind() == ErrorKind::ConnectionReset => {
                panic!("the broker reset the connection without connection.close")
            }
            Err(error) => panic!("read: {error}"),
        }
        if read < 8 {
            let n = buffer.len().min(8 - read);
            header[read..read + n].copy_from_slice(&buffer[..n]);
            read += n;
            if read == 8 && header == PROTOCOL_HEADER {
                panic!("the broker refused the protocol header");
            }
        }
        while let Some(frame) = parse_frame(&mut buffer, 0).expect("the broker's framing") {
            trace_frame(&frame);
            if frame.channel != 0 || frame.frame_type != FrameType::Method {
                continue;
            }
            match Method::decode(&frame.payload).expect("the broker's methods decode") {
                Method::ConnectionCloseOk(_) => return End::CloseOk,
                Method::ConnectionClose(close) => return End::Close(close.reply_code),
                _ => {}
            }
        }
    }
}

/// With HARE_FUZZ_TRACE set, each frame on stderr (to read what a crashing input does).
fn trace(direction: &str, bytes: &[u8]) {
    static ON: OnceLock<bool> = OnceLock::new();
    if !*ON.get_or_init(|| std::env::var_os("HARE_FUZZ_TRACE").is_some()) {
        return;
    }
    let mut buffer = BytesMut::from(bytes);
    loop {
        match parse_frame(&mut buffer, 0) {
            Ok(Some(frame)) => match frame.frame_type {
                FrameType::Method => match Method::decode(&frame.payload) {
                    Ok(method) => eprintln!("{direction} {} {method:?}", frame.channel),
                    Err(error) => eprintln!("{direction} {} bad method: {error}", frame.channel),
                },
                kind => eprintln!("{direction} {} {kind:?} {:?}", frame.channel, frame.payload),
            },
            Ok(None) if buffer.is_empty() => return,
            Ok(None) => return eprintln!("{direction} incomplete: {:?}", &buffer[..]),
            Err(error) => return eprintln!("{direction} framing: {error}: {:?}", &buffer[..]),
        }
    }
}

fn trace_frame(frame: &Frame) {
    let mut bytes = Vec::new();
    bytes.push(frame.frame_type as u8);
    bytes.extend_from_slice(&frame.channel.to_be_bytes());
    let size = u32::try_from(frame.payload.len()).unwrap_or(u32::MAX);
    bytes.extend_from_slice(&size.to_be_bytes());
    bytes.extend_from_slice(&frame.payload);
    bytes.push(FRAME_END);
    trace("<", &bytes);
}

fn socket_linger_zero(stream: &TcpStream) {
    use std::os::unix::io::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid descriptor and a pointer to a live `linger` of the size passed; the
    // result is ignored (the reset only saves ports).
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::addr_of!(linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// No leak checks in this process: glommio keeps the only pointers to some of a connection's
/// tasks in io_uring's rings, memory the leak sanitizer does not scan, so every live
/// connection would look leaked.
#[no_mangle]
pub extern "C" fn __lsan_is_turned_off() -> std::os::raw::c_int {
    1
}

fuzz_target!(|data: &[u8]| {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let end = converse(&connection_frames::frames(data));
    if let End::Close(code) = end {
        // Only connection exceptions end a connection (channel ones close a channel).
        assert!(
            code == 320 || code == 402 || (500..=599).contains(&code),
            "connection.close with reply code {code}"
        );
    }
    if RUNS.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
        let end = converse(&connection_frames::cleanup_frames());
        assert_eq!(end, End::CloseOk, "the cleanup connection failed");
    }
});
