//! Restart after a crash: a broker SIGKILLed while a confirming publisher keeps its log busy is
//! started again at once on the same ports and data directory, ten times in a row, while
//! another writer loads the same disk with O_DIRECT writes. The dead process's listening
//! sockets outlive it for a while (the kernel tears down its io_uring instance, which still
//! holds an accept and disk I/O, after the process is gone), so the new broker must wait for
//! them instead of failing; and every confirmed message must survive every crash.

mod client;
mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use amqprs::channel::{BasicPublishArguments, Channel, QueueDeclareArguments};
use amqprs::BasicProperties;
use client::{confirm_select, declare, ready, Client, Event, Events};
use common::{Broker, Listen};

const QUEUE: &str = "restart";
const SHARDS: usize = 2;
/// Unconfirmed publishes in flight.
const WINDOW: u64 = 64;
/// Big enough that every publish is real disk work.
const BODY_BYTES: usize = 4096;

/// Publishes and confirms: `sent` so far, `confirmed` = every publish numbered 1..=confirmed.
#[derive(Default)]
struct Published {
    sent: u64,
    confirmed: u64,
}

/// Publishes persistent messages with at most `WINDOW` unconfirmed until the connection
/// breaks (the broker is killed) or the task is aborted, recording how many were confirmed.
async fn publish_until_killed(channel: Channel, mut events: Events, state: Arc<Mutex<Published>>) {
    let mut acked = vec![false];
    loop {
        let (sent, confirmed) = {
            let state = state.lock().expect("state lock");
            (state.sent, state.confirmed)
        };
        if sent - confirmed < WINDOW {
            let properties = BasicProperties::default().with_persistence(true).finish();
            let args = BasicPublishArguments::new("", QUEUE);
            if channel
                .basic_publish(properties, vec![b'x'; BODY_BYTES], args)
                .await
                .is_err()
            {
                return;
            }
            acked.push(false);
            state.lock().expect("state lock").sent = sent + 1;
            continue;
        }
        let Some(event) = events.next_unbounded().await else {
            return;
        };
        match event {
            Event::Ack { tag, multiple } => {
                let first = if multiple { 1 } else { tag };
                acked[first as usize..=tag as usize].fill(true);
                let mut state = state.lock().expect("state lock");
                while state.confirmed < state.sent && acked[state.confirmed as usize + 1] {
                    state.confirmed += 1;
                }
            }
            other => panic!("publisher got {other:?}"),
        }
    }
}

/// Rewrites a file with 1 MiB O_DIRECT writes until dropped, keeping the disk under the data
/// directory busy the way another database on the same machine would.
struct DiskLoad {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    path: PathBuf,
}

impl DiskLoad {
    const CHUNK: usize = 1 << 20;
    const CHUNKS: u64 = 64;
    /// O_DIRECT needs buffers, offsets and lengths aligned to the logical block size.
    const ALIGN: usize = 4096;

    fn start(dir: &Path) -> DiskLoad {
        std::fs::create_dir_all(dir).expect("create disk load dir");
        let path = dir.join(format!("disk-load-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("open the disk load file with O_DIRECT");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buffer = vec![0xa5u8; Self::CHUNK + Self::ALIGN];
            let offset = buffer.as_ptr().align_offset(Self::ALIGN);
            let chunk = &mut buffer[offset..offset + Self::CHUNK];
            let mut index = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                file.seek(SeekFrom::Start(index * Self::CHUNK as u64))
                    .expect("seek the disk load file");
                file.write_all(chunk).expect("O_DIRECT write");
                index = (index + 1) % Self::CHUNKS;
            }
        });
        DiskLoad {
            stop,
            thread: Some(thread),
            path,
        }
    }
}

impl Drop for DiskLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A client publishing to the durable queue on its own task.
struct Publisher {
    _client: Client,
    task: tokio::task::JoinHandle<()>,
    state: Arc<Mutex<Published>>,
}

impl Publisher {
    async fn start(broker: &Broker) -> Publisher {
        let client = Client::connect(broker).await;
        let (channel, events) = client.channel().await;
        declare(&channel, QueueDeclareArguments::durable_client_named(QUEUE)).await;
        confirm_select(&channel).await;
        let state = Arc::new(Mutex::new(Published::default()));
        let task = tokio::spawn(publish_until_killed(channel, events, state.clone()));
        Publisher {
            _client: client,
            task,
            state,
        }
    }

    /// Stops publishing; returns (sent, confirmed).
    fn stop(self) -> (u64, u64) {
        self.task.abort();
        let state = self.state.lock().expect("state lock");
        (state.sent, state.confirmed)
    }
}

/// Messages in the queue after a restart.
async fn queued(broker: &Broker) -> u64 {
    let client = Client::connect(broker).await;
    let (channel, _events) = client.channel().await;
    u64::from(ready(&channel, QUEUE).await)
}

/// Waits until at least `count` publishes are confirmed, so the log has had real work.
async fn until_confirmed(publisher: &Publisher, count: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while publisher.state.lock().expect("state lock").confirmed < count {
        assert!(
            Instant::now() < deadline,
            "{count} publishes never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_restarts_after_kill_9_under_disk_load_keep_every_confirmed_message() {
    const ROUNDS: usize = 10;
    let listen = Listen::free();
    let data_dir = common::fresh_data_dir();
    let _load = DiskLoad::start(&common::test_dir());
    let mut broker = Broker::start_on(&data_dir, SHARDS, listen, &[]);
    let mut kept = 0;
    for round in 0..ROUNDS {
        let publisher = Publisher::start(&broker).await;
        until_confirmed(&publisher, 200).await;
        // Still publishing: the log has appends and fdatasyncs in flight when it dies.
        let dir = broker.kill9();
        let (sent, confirmed) = publisher.stop();
        let restarted = Instant::now();
        // At once, on the same ports: the dead broker's listeners may still be open.
        broker = Broker::start_on(&dir, SHARDS, listen, &[]);
        let took = restarted.elapsed();
        assert_eq!(broker.addr, listen.amqp);
        let now = queued(&broker).await;
        println!("round {round}: restarted in {took:?}; {confirmed} of {sent} publishes confirmed, queue holds {now}");
        assert!(
            now >= kept + confirmed && now <= kept + sent,
            "round {round}: the queue held {kept}, then {sent} were published and {confirmed} \
             confirmed, but it holds {now} after the restart"
        );
        kept = now;
    }
}

#[test]
fn a_port_a_live_program_holds_fails_the_start_after_the_retry_time() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    let address = held.local_addr().expect("held address");
    let listen = Listen {
        amqp: address,
        ..Listen::ANY
    };
    let data_dir = common::fresh_data_dir();

    let started = Instant::now();
    let (status, stderr) =
        Broker::start_failure_on(&data_dir, 1, listen, &["--listen-retry-secs", "1"]);
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "stderr: {stderr:?}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "gave up after {took:?}"
    );
    assert!(
        stderr.contains("waiting for it"),
        "it said it was waiting: {stderr:?}"
    );
    assert!(
        stderr.contains(&format!(
            "cannot listen on {address}: Address already in use (os error 98) (still in use after waiting 1."
        )),
        "stderr: {stderr:?}"
    );

    let started = Instant::now();
    let (status, stderr) =
        Broker::start_failure_on(&data_dir, 1, listen, &["--listen-retry-secs", "0"]);
    assert_eq!(status.code(), Some(1), "stderr: {stderr:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "0 waits not at all"
    );
    assert!(
        stderr.contains(&format!(
            "cannot listen on {address}: Address already in use (os error 98)\n"
        )),
        "stderr: {stderr:?}"
    );

    // The program holding the port keeps it: nothing was shared.
    let _client = std::net::TcpStream::connect(address).expect("connect to the held port");
    held.accept().expect("the holder accepts");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn a_second_broker_on_the_same_data_dir_and_ports_fails_at_once() {
    let listen = Listen::free();
    let first = Broker::start_on(&common::fresh_data_dir(), 1, listen, &[]);
    let started = Instant::now();
    let (status, stderr) = Broker::start_failure_on(&first.data_dir, 1, listen, &[]);
    assert_eq!(status.code(), Some(1), "stderr: {stderr:?}");
    assert!(
        stderr.contains("is in use by another Hare process"),
        "stderr: {stderr:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the data directory lock is taken before any port is waited for"
    );
}
