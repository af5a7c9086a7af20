//! Regression: with a relative `--data-dir` (the default is `./hare-data`), the logs could not
//! prepare their next segment (glommio opened the relative directory against no directory
//! descriptor: EBADF), so persistent publishing broke once the first segment filled up.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::raw::RawClient;
use hare::protocol::{
    write_content, write_method_frame, BasicProperties, BasicPublish, Method, QueueDeclare,
    ShortStr,
};

fn start_in_cwd(cwd: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hare"))
        .current_dir(cwd)
        .args(["--listen", "127.0.0.1:0", "--shards", "1"])
        .args(["--management-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--data-dir", "relative-data"])
        .args(["--segment-size-bytes", "1048576"])
        .env("HARE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hare");
    // The management and metrics lines come first; the AMQP address line comes last.
    let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    while !line.starts_with("hare listening on") {
        line.clear();
        if reader.read_line(&mut line).expect("read hare's output") == 0 {
            break;
        }
    }
    let addr = line
        .split_whitespace()
        .nth(3)
        .and_then(|word| word.parse().ok())
        .unwrap_or_else(|| panic!("hare did not print its address: {line:?}"));
    (child, addr)
}

fn stop(mut child: Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().expect("wait for hare");
    assert!(status.success(), "hare exited with {status}");
}

#[test]
fn persistent_messages_roll_segments_under_a_relative_data_dir() {
    let cwd = common::test_dir().join(format!("relative-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cwd);
    std::fs::create_dir_all(&cwd).expect("create the working directory");

    let (broker, addr) = start_in_cwd(&cwd);
    let mut client = RawClient::open(addr);
    client.confirming_durable_queue(1, "rolled");
    // 3000 × 1 KiB fills three 1 MiB segments.
    let properties = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .to_raw();
    let count = 3000u64;
    // In batches, each waiting for its acks: if the log stops acking, the reader's timeout
    // fails the test instead of a large write blocking on a socket the broker stopped reading.
    let batch = 100u64;
    let mut acked = 0u64;
    for sent in (batch..=count).step_by(100) {
        let mut out = Vec::new();
        for _ in 0..batch {
            write_method_frame(
                &mut out,
                1,
                &Method::BasicPublish(BasicPublish {
                    routing_key: ShortStr::from_static("rolled"),
                    ..Default::default()
                }),
            );
            write_content(&mut out, 1, 60, &properties, &[7u8; 1024], 131_072);
        }
        client.send_bytes(&out);
        while acked < sent {
            match client.next_method() {
                (1, Method::BasicAck(ack)) => acked = ack.delivery_tag,
                other => panic!("expected only acks, got {other:?} after {acked}"),
            }
        }
    }
    stop(broker);

    let (broker, addr) = start_in_cwd(&cwd);
    let mut reader = RawClient::open(addr);
    reader.open_channel(1);
    reader.send_method(
        1,
        QueueDeclare {
            queue: ShortStr::from_static("rolled"),
            durable: true,
            passive: true,
            ..Default::default()
        },
    );
    match reader.next_method() {
        (1, Method::QueueDeclareOk(ok)) => assert_eq!(u64::from(ok.message_count), count),
        other => panic!("expected declare-ok, got {other:?}"),
    }
    stop(broker);
    let _ = std::fs::remove_dir_all(&cwd);
}
