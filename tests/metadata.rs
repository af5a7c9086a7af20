//! Durable definitions in the metadata log, seen from a client:
//! - crash rounds: a burst of declares, deletes, binds and unbinds on durable exchanges and
//!   queues, SIGKILLed after a seeded number of answers (and a seeded few microseconds more, so
//!   the kill lands inside a change or a snapshot rewrite: the log is rewritten every few
//!   changes here). After the restart the definitions are exactly those whose -ok arrived,
//!   plus possibly the one in flight: checked by passive declares and by routing a probe for
//!   every exchange and key into the queues.
//! - a data directory written by the previous storage (one `definitions` file, in
//!   `tests/fixtures/definitions-format-1`) starts, is converted once, and keeps its objects.
//!
//! Seeded: the seed is printed; `HARE_METADATA_SEED=<seed>` replays a run.

mod client;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use amqprs::channel::{
    BasicGetArguments, BasicPublishArguments, Channel, ExchangeBindArguments,
    ExchangeDeclareArguments, ExchangeDeleteArguments, ExchangeUnbindArguments, QueueBindArguments,
    QueueDeclareArguments, QueueDeleteArguments, QueueUnbindArguments,
};
use amqprs::BasicProperties;
use client::{within, Client};
use common::Broker;

const SHARDS: usize = 2;
const ROUNDS: usize = 8;
const EXCHANGES: usize = 3;
const QUEUES: usize = 5;
const KEYS: usize = 2;
/// Small enough that the log starts a new generation every few dozen changes.
const COMPACTION_ARGS: [&str; 2] = ["--metadata-compaction-bytes", "1024"];

fn seed() -> u64 {
    let seed = match std::env::var("HARE_METADATA_SEED") {
        Ok(text) => text.trim().parse().expect("HARE_METADATA_SEED is a u64"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64,
    };
    println!("metadata seed {seed} (HARE_METADATA_SEED={seed} replays it)");
    seed
}

fn exchange_name(index: usize) -> String {
    format!("meta.x{index}")
}

fn queue_name(index: usize) -> String {
    format!("meta.q{index}")
}

fn key_name(index: usize) -> String {
    format!("k{index}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Destination {
    Queue(usize),
    Exchange(usize),
}

#[derive(Clone, Copy, Debug)]
enum Op {
    DeclareExchange(usize),
    DeleteExchange(usize),
    DeclareQueue(usize),
    DeleteQueue(usize),
    Bind(usize, Destination, usize),
    Unbind(usize, Destination, usize),
}

/// What the durable definitions should be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Model {
    exchanges: BTreeSet<usize>,
    queues: BTreeSet<usize>,
    bindings: BTreeSet<(usize, Destination, usize)>,
}

/// What a client can see of the definitions: which objects exist and where each probe goes.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    exchanges: BTreeSet<usize>,
    queues: BTreeSet<usize>,
    /// (exchange, key) → queues a message published there reaches.
    routes: BTreeMap<(usize, usize), BTreeSet<usize>>,
}

impl Model {
    fn apply(&mut self, op: Op) {
        match op {
            Op::DeclareExchange(x) => {
                self.exchanges.insert(x);
            }
            Op::DeleteExchange(x) => {
                self.exchanges.remove(&x);
                self.bindings.retain(|(source, destination, _)| {
                    *source != x && *destination != Destination::Exchange(x)
                });
            }
            Op::DeclareQueue(q) => {
                self.queues.insert(q);
            }
            Op::DeleteQueue(q) => {
                self.queues.remove(&q);
                self.bindings
                    .retain(|(_, destination, _)| *destination != Destination::Queue(q));
            }
            Op::Bind(x, destination, key) => {
                self.bindings.insert((x, destination, key));
            }
            Op::Unbind(x, destination, key) => {
                self.bindings.remove(&(x, destination, key));
            }
        }
    }

    /// A random change that is valid now (deletes and unbinds name what exists).
    fn random_op(&self, rng: &mut fastrand::Rng) -> Op {
        loop {
            let pick = |rng: &mut fastrand::Rng, set: &BTreeSet<usize>| {
                (!set.is_empty())
                    .then(|| *set.iter().nth(rng.usize(..set.len())).expect("in range"))
            };
            let op = match rng.u8(..10) {
                0 => Some(Op::DeclareExchange(rng.usize(..EXCHANGES))),
                1 => pick(rng, &self.exchanges).map(Op::DeleteExchange),
                2 | 3 => Some(Op::DeclareQueue(rng.usize(..QUEUES))),
                4 => pick(rng, &self.queues).map(Op::DeleteQueue),
                5..=7 => {
                    let source = pick(rng, &self.exchanges);
                    let destination = if rng.bool() {
                        pick(rng, &self.queues).map(Destination::Queue)
                    } else {
                        pick(rng, &self.exchanges).map(Destination::Exchange)
                    };
                    source.zip(destination).map(|(source, destination)| {
                        Op::Bind(source, destination, rng.usize(..KEYS))
                    })
                }
                _ => {
                    let bindings: Vec<_> = self.bindings.iter().copied().collect();
                    (!bindings.is_empty()).then(|| {
                        let (source, destination, key) = bindings[rng.usize(..bindings.len())];
                        Op::Unbind(source, destination, key)
                    })
                }
            };
            if let Some(op) = op {
                return op;
            }
        }
    }

    /// Direct-exchange routing over queue and exchange-to-exchange bindings; one copy per queue.
    fn route(&self, exchange: usize, key: usize) -> BTreeSet<usize> {
        let mut queues = BTreeSet::new();
        let mut seen = BTreeSet::from([exchange]);
        let mut pending = vec![exchange];
        while let Some(source) = pending.pop() {
            for (from, destination, bound_key) in &self.bindings {
                if *from != source || *bound_key != key {
                    continue;
                }
                match destination {
                    Destination::Queue(queue) => {
                        queues.insert(*queue);
                    }
                    Destination::Exchange(next) => {
                        if seen.insert(*next) {
                            pending.push(*next);
                        }
                    }
                }
            }
        }
        queues
    }

    fn observable(&self) -> Observed {
        let mut routes = BTreeMap::new();
        for exchange in &self.exchanges {
            for key in 0..KEYS {
                routes.insert((*exchange, key), self.route(*exchange, key));
            }
        }
        Observed {
            exchanges: self.exchanges.clone(),
            queues: self.queues.clone(),
            routes,
        }
    }
}

async fn perform(channel: &Channel, op: Op) -> Result<(), amqprs::error::Error> {
    let destination_name = |destination: Destination| match destination {
        Destination::Queue(q) => queue_name(q),
        Destination::Exchange(x) => exchange_name(x),
    };
    match op {
        Op::DeclareExchange(x) => {
            let args = ExchangeDeclareArguments::new(&exchange_name(x), "direct")
                .durable(true)
                .finish();
            channel.exchange_declare(args).await
        }
        Op::DeleteExchange(x) => {
            channel
                .exchange_delete(ExchangeDeleteArguments::new(&exchange_name(x)))
                .await
        }
        Op::DeclareQueue(q) => channel
            .queue_declare(QueueDeclareArguments::durable_client_named(&queue_name(q)))
            .await
            .map(|_| ()),
        Op::DeleteQueue(q) => channel
            .queue_delete(QueueDeleteArguments::new(&queue_name(q)))
            .await
            .map(|_| ()),
        Op::Bind(x, Destination::Queue(q), key) => {
            let args = QueueBindArguments::new(&queue_name(q), &exchange_name(x), &key_name(key));
            channel.queue_bind(args).await
        }
        Op::Unbind(x, Destination::Queue(q), key) => {
            let args = QueueUnbindArguments::new(&queue_name(q), &exchange_name(x), &key_name(key));
            channel.queue_unbind(args).await
        }
        Op::Bind(x, destination, key) => {
            let args = ExchangeBindArguments::new(
                &destination_name(destination),
                &exchange_name(x),
                &key_name(key),
            );
            channel.exchange_bind(args).await
        }
        Op::Unbind(x, destination, key) => {
            let args = ExchangeUnbindArguments::new(
                &destination_name(destination),
                &exchange_name(x),
                &key_name(key),
            );
            channel.exchange_unbind(args).await
        }
    }
}

/// Passive declares on a fresh channel each (a 404 closes the channel).
async fn exists(client: &Client, declare: impl Fn(&Channel) -> ExistsCheck) -> bool {
    let (channel, _events) = client.channel().await;
    let found = match declare(&channel) {
        ExistsCheck::Exchange(name) => {
            let args = ExchangeDeclareArguments::new(&name, "direct")
                .passive(true)
                .finish();
            within("exchange.declare passive", channel.exchange_declare(args))
                .await
                .is_ok()
        }
        ExistsCheck::Queue(name) => {
            let args = QueueDeclareArguments::new(&name).passive(true).finish();
            within("queue.declare passive", channel.queue_declare(args))
                .await
                .is_ok()
        }
    };
    if found {
        within("channel.close", channel.close())
            .await
            .expect("close channel");
    }
    found
}

enum ExistsCheck {
    Exchange(String),
    Queue(String),
}

async fn observe(broker: &Broker) -> Observed {
    let client = Client::connect(broker).await;
    let mut exchanges = BTreeSet::new();
    for x in 0..EXCHANGES {
        if exists(&client, |_| ExistsCheck::Exchange(exchange_name(x))).await {
            exchanges.insert(x);
        }
    }
    let mut queues = BTreeSet::new();
    for q in 0..QUEUES {
        if exists(&client, |_| ExistsCheck::Queue(queue_name(q))).await {
            queues.insert(q);
        }
    }
    let (channel, _events) = client.channel().await;
    // Nothing else publishes: whatever a queue holds is a probe.
    for q in &queues {
        drain(&channel, &queue_name(*q)).await;
    }
    let mut routes = BTreeMap::new();
    for x in &exchanges {
        for key in 0..KEYS {
            let args = BasicPublishArguments::new(&exchange_name(*x), &key_name(key));
            within(
                "basic.publish",
                channel.basic_publish(BasicProperties::default(), b"probe".to_vec(), args),
            )
            .await
            .expect("basic.publish");
            // A queue.declare round trip orders the probe before the gets that follow.
            let mut reached = BTreeSet::new();
            for q in &queues {
                if !drain(&channel, &queue_name(*q)).await.is_empty() {
                    reached.insert(*q);
                }
            }
            routes.insert((*x, key), reached);
        }
    }
    // amqprs may report an error closing a connection whose other channels the server
    // closed (the 404s above); what was observed is complete either way.
    if let Err(error) = within("connection.close", client.connection.close()).await {
        println!("connection.close after observing: {error}");
    }
    Observed {
        exchanges,
        queues,
        routes,
    }
}

/// Takes every message of queue `q`. A passive declare first waits for earlier publishes on
/// this channel to be routed (the broker answers it after them).
async fn drain(channel: &Channel, name: &str) -> Vec<Vec<u8>> {
    let args = QueueDeclareArguments::new(name).passive(true).finish();
    within("queue.declare passive", channel.queue_declare(args))
        .await
        .expect("declared queue exists");
    let mut bodies = Vec::new();
    loop {
        let args = BasicGetArguments::new(name).no_ack(true).finish();
        match within("basic.get", channel.basic_get(args))
            .await
            .expect("basic.get")
        {
            Some((_, _, body)) => bodies.push(body),
            None => return bodies,
        }
    }
}

#[derive(Default)]
struct Progress {
    acknowledged: Vec<Op>,
    in_flight: Option<Op>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill9_the_definitions_are_exactly_the_acknowledged_changes() {
    let seed = seed();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut broker = Broker::start_with(SHARDS, &COMPACTION_ARGS);
    let mut model = Model::default();
    for round in 0..ROUNDS {
        let kill_after = rng.usize(5..80);
        let kill_delay = Duration::from_micros(rng.u64(..3000));
        let progress = Arc::new(Mutex::new(Progress::default()));
        let client = Client::connect(&broker).await;
        let (channel, _events) = client.channel().await;
        let (reached, reached_wait) = tokio::sync::oneshot::channel();
        let worker = {
            let progress = Arc::clone(&progress);
            let mut model = model.clone();
            let mut rng = fastrand::Rng::with_seed(rng.u64(..));
            tokio::spawn(async move {
                let mut reached = Some(reached);
                // Bounded: the kill comes after `kill_after` answers.
                for _ in 0..10_000 {
                    let op = model.random_op(&mut rng);
                    progress.lock().expect("not poisoned").in_flight = Some(op);
                    let answered =
                        tokio::time::timeout(Duration::from_secs(10), perform(&channel, op)).await;
                    if !matches!(answered, Ok(Ok(()))) {
                        return;
                    }
                    model.apply(op);
                    let mut progress = progress.lock().expect("not poisoned");
                    progress.in_flight = None;
                    progress.acknowledged.push(op);
                    if progress.acknowledged.len() == kill_after {
                        if let Some(reached) = reached.take() {
                            let _ = reached.send(());
                        }
                    }
                }
            })
        };
        within("changes before the kill", reached_wait)
            .await
            .expect("the worker reaches the kill point");
        tokio::time::sleep(kill_delay).await;
        let data_dir = broker.kill9();
        within("worker ends", worker).await.expect("worker task");
        drop(client);

        let progress = std::mem::take(&mut *progress.lock().expect("not poisoned"));
        for op in &progress.acknowledged {
            model.apply(*op);
        }
        let mut with_in_flight = model.clone();
        if let Some(op) = progress.in_flight {
            with_in_flight.apply(op);
        }
        broker = Broker::start_in_with(&data_dir, SHARDS, &COMPACTION_ARGS);
        let observed = observe(&broker).await;
        let acknowledged = model.observable();
        if observed == acknowledged {
            continue;
        }
        assert_eq!(
            observed,
            with_in_flight.observable(),
            "seed {seed} round {round}: neither the {} acknowledged changes nor those plus {:?} \
             (acknowledged-only would be {acknowledged:?})",
            progress.acknowledged.len(),
            progress.in_flight,
        );
        model = with_in_flight;
    }
    // The rounds went through several generations of the log: snapshots were made (and
    // killed) while changes went on.
    let generation = std::fs::read_dir(broker.data_dir.join("metadata"))
        .expect("metadata directory")
        .filter_map(|entry| {
            let name = entry.expect("directory entry").file_name();
            name.to_str()?.strip_suffix(".log")?.parse::<u32>().ok()
        })
        .max()
        .expect("a generation exists");
    assert!(generation > 1, "seed {seed}: the log was never compacted");
    // A clean restart after all the rounds keeps everything too.
    let expected = model.observable();
    let broker = broker.restart();
    assert_eq!(
        observe(&broker).await,
        expected,
        "seed {seed} after a clean restart"
    );
}

/// A data directory from before the metadata log: its `definitions` file was written by the
/// previous storage (tests/fixtures/definitions-format-1: exchanges legacy.topic (with
/// orders bound by `order.*`) and legacy.fanout (alternate exchange legacy.topic, bound to
/// legacy.topic and to audit), queues legacy.orders and legacy.audit, and audit bound to
/// amq.direct by `audit`; made by pika against 2 shards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definitions_file_from_before_the_log_is_converted_once_and_kept() {
    let data_dir = common::fresh_data_dir();
    std::fs::create_dir_all(&data_dir).expect("create data dir");
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/definitions-format-1"
    );
    std::fs::copy(fixture, data_dir.join("definitions")).expect("copy the fixture");

    let broker = Broker::start_in(&data_dir, SHARDS);
    assert!(
        !data_dir.join("definitions").exists(),
        "the definitions file is deleted once the log holds it"
    );
    assert!(data_dir.join("metadata").is_dir());
    check_legacy_objects(&broker).await;

    // A change after the conversion, then a kill: both the converted and the new survive.
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    within(
        "queue.declare",
        channel.queue_declare(QueueDeclareArguments::durable_client_named(
            "after.conversion",
        )),
    )
    .await
    .expect("queue.declare");
    drop(client);
    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, SHARDS);
    check_legacy_objects(&broker).await;
    let client = Client::connect(&broker).await;
    assert!(exists(&client, |_| ExistsCheck::Queue("after.conversion".into())).await);
}

async fn check_legacy_objects(broker: &Broker) {
    let client = Client::connect(broker).await;
    for exchange in ["legacy.topic", "legacy.fanout"] {
        assert!(
            exists(&client, |_| ExistsCheck::Exchange(exchange.into())).await,
            "{exchange}"
        );
    }
    assert!(
        !exists(&client, |_| ExistsCheck::Exchange(
            "legacy.transient".into()
        ))
        .await
    );
    assert!(
        !exists(&client, |_| ExistsCheck::Queue(
            "legacy.transient-queue".into()
        ))
        .await
    );
    let (channel, _events) = client.channel().await;
    for (exchange, key, queue) in [
        ("legacy.topic", "order.created", "legacy.orders"),
        ("legacy.fanout", "anything", "legacy.audit"),
        ("amq.direct", "audit", "legacy.audit"),
    ] {
        let args = BasicPublishArguments::new(exchange, key);
        within(
            "basic.publish",
            channel.basic_publish(BasicProperties::default(), b"probe".to_vec(), args),
        )
        .await
        .expect("basic.publish");
        let args = QueueDeclareArguments::new(queue).passive(true).finish();
        within("queue.declare passive", channel.queue_declare(args))
            .await
            .expect("queue exists");
        let args = BasicGetArguments::new(queue).no_ack(true).finish();
        let got = within("basic.get", channel.basic_get(args))
            .await
            .expect("basic.get");
        assert!(got.is_some(), "{exchange} / {key} reaches {queue}");
    }
    // legacy.fanout → legacy.topic (exchange binding) → legacy.orders for order.* keys.
    let args = BasicPublishArguments::new("legacy.fanout", "order.paid");
    within(
        "basic.publish",
        channel.basic_publish(BasicProperties::default(), b"probe".to_vec(), args),
    )
    .await
    .expect("basic.publish");
    for queue in ["legacy.orders", "legacy.audit"] {
        let args = QueueDeclareArguments::new(queue).passive(true).finish();
        within("queue.declare passive", channel.queue_declare(args))
            .await
            .expect("queue exists");
        let args = BasicGetArguments::new(queue).no_ack(true).finish();
        let got = within("basic.get", channel.basic_get(args))
            .await
            .expect("basic.get");
        assert!(got.is_some(), "legacy.fanout / order.paid reaches {queue}");
    }
}

/// Unmounts the small filesystem a test mounted, even when the test fails.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A data directory whose `metadata/` is a 64 KiB tmpfs (the metadata log uses buffered I/O),
/// so a test can fill it. None without the right to mount (root, as in CI).
fn data_dir_with_small_metadata_disk() -> Option<(std::path::PathBuf, Mount)> {
    let data_dir = common::fresh_data_dir();
    let metadata_dir = data_dir.join("metadata");
    std::fs::create_dir_all(&metadata_dir).expect("create the metadata directory");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&metadata_dir)
        .status()
        .is_ok_and(|status| status.success());
    if !mounted {
        println!("skipped: mounting a tmpfs needs root");
        return None;
    }
    Some((data_dir, Mount(metadata_dir)))
}

/// Fills the metadata filesystem to the last byte; returns the filler to delete.
fn fill_metadata_disk(data_dir: &std::path::Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler_path = data_dir.join("metadata").join("filler");
    let mut filler = std::fs::File::create(&filler_path).expect("create the filler");
    let block = [0u8; 4096];
    while filler.write(&block).is_ok_and(|written| written > 0) {}
    while filler.write(&block[..1]).is_ok_and(|written| written > 0) {}
    filler_path
}

/// Arguments too large for what is left of the log file's last page: tmpfs allocates whole
/// pages, so on a full disk an entry carrying them cannot be written.
fn page_sized_arguments() -> amqprs::FieldTable {
    let mut arguments = amqprs::FieldTable::new();
    arguments.insert(
        "note".try_into().expect("field name"),
        amqprs::FieldValue::from("x".repeat(6000)),
    );
    arguments
}

/// A full disk under the metadata log: a durable declare gets no declare-ok while nothing
/// can be written (the writer retries, and never answers for a change it could not store),
/// gets it once space returns, and the queue survives a kill -9.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_declare_ok_until_the_change_is_stored() {
    let Some((data_dir, _mount)) = data_dir_with_small_metadata_disk() else {
        return;
    };
    let broker = Broker::start_in(&data_dir, SHARDS);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    within(
        "queue.declare",
        channel.queue_declare(QueueDeclareArguments::durable_client_named("before.full")),
    )
    .await
    .expect("declare while there is space");

    let filler_path = fill_metadata_disk(&data_dir);
    let arguments = page_sized_arguments();
    let declare = tokio::spawn(async move {
        let args = QueueDeclareArguments::durable_client_named("during.full")
            .arguments(arguments)
            .finish();
        let declared = channel.queue_declare(args).await;
        (channel, declared)
    });
    // The writer retries every 500 ms: several retries fail meanwhile.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !declare.is_finished(),
        "declare-ok came although the metadata log could not store the queue"
    );
    std::fs::remove_file(&filler_path).expect("free the space");
    let (_channel, declared) = within("declare-ok after space returns", declare)
        .await
        .expect("declare task");
    declared.expect("declare-ok once the change is stored");
    drop(client);

    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, SHARDS);
    let client = Client::connect(&broker).await;
    for queue in ["before.full", "during.full"] {
        assert!(
            exists(&client, |_| ExistsCheck::Queue(queue.into())).await,
            "{queue} survives"
        );
    }
    drop(client);
    drop(broker);
}

/// Declares durable queues until the metadata log's last page has 8 bytes left, so that on a
/// full tmpfs the next entry needs a page it cannot get. A queue.declare entry with a name of
/// n bytes makes a record of 67 + n bytes, padded to 8 (docs/storage-format.md); the file
/// size is measured after every declare, so the arithmetic only has to be close.
async fn fill_last_page_of_the_log(channel: &Channel, data_dir: &std::path::Path) {
    const PAGE_BYTES: u64 = 4096;
    let metadata_dir = data_dir.join("metadata");
    for index in 0..100 {
        let log = std::fs::read_dir(&metadata_dir)
            .expect("metadata directory")
            .map(|entry| entry.expect("directory entry").path())
            .find(|path| path.extension().is_some_and(|ext| ext == "log"))
            .expect("a generation exists");
        let size = std::fs::metadata(&log).expect("log size").len();
        let remaining = PAGE_BYTES - size % PAGE_BYTES;
        if remaining == 8 {
            return;
        }
        // Fill the page to 8 bytes short, or spill into the next one if that is too little.
        let name_len = remaining
            .checked_sub(8 + 67)
            .filter(|len| (1..=240).contains(len))
            .unwrap_or(200);
        let name = format!(
            "pad{index:03}{}",
            "x".repeat(name_len as usize - 6.min(name_len as usize))
        );
        within(
            "queue.declare",
            channel.queue_declare(QueueDeclareArguments::durable_client_named(&name)),
        )
        .await
        .expect("queue.declare");
    }
    panic!("the log's last page could not be filled to 8 bytes short");
}

/// Regression: an answer that changes nothing can report a change the broker made on its
/// own. When the last consumer of an auto-delete queue goes, the queue (and an auto-delete
/// exchange bound only to it) is deleted with nobody waiting for that deletion; a client's
/// queue.delete-ok or exchange.delete-ok for them used to go out before the deletion was on
/// disk, so a kill -9 could bring back what the client was told is gone. On a full disk the
/// deletion cannot be stored: those answers must wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_of_what_an_auto_delete_removed_wait_until_that_is_stored() {
    use amqprs::channel::BasicCancelArguments;
    let Some((data_dir, _mount)) = data_dir_with_small_metadata_disk() else {
        return;
    };
    let broker = Broker::start_in(&data_dir, SHARDS);
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let exchange = ExchangeDeclareArguments::new("auto.x", "direct")
        .durable(true)
        .auto_delete(true)
        .finish();
    within("exchange.declare", channel.exchange_declare(exchange))
        .await
        .expect("exchange.declare");
    let queue = QueueDeclareArguments::new("auto.q")
        .durable(true)
        .auto_delete(true)
        .finish();
    within("queue.declare", channel.queue_declare(queue))
        .await
        .expect("queue.declare");
    within(
        "queue.bind",
        channel.queue_bind(QueueBindArguments::new("auto.q", "auto.x", "k")),
    )
    .await
    .expect("queue.bind");
    let consumer = client::consume(&channel, "auto.q", true).await;

    // The auto-delete below must be the first change that cannot be stored: nothing else may
    // wait ahead of the answers under test.
    fill_last_page_of_the_log(&channel, &data_dir).await;
    let filler_path = fill_metadata_disk(&data_dir);
    let other = Client::connect(&broker).await;
    let (queue_channel, _queue_events) = other.channel().await;
    let (exchange_channel, _exchange_events) = other.channel().await;
    // The last consumer goes: auto.q is deleted, and with its only binding gone, auto.x. The
    // owner starts that deletion before it answers cancel-ok, so the deletes below find
    // nothing left to delete: their answers report the auto-delete.
    within(
        "basic.cancel",
        channel.basic_cancel(BasicCancelArguments::new(&consumer.tag)),
    )
    .await
    .expect("basic.cancel-ok");
    // Once the other connection's shard no longer knows auto.q (basic.get answers 404 from
    // there without asking anyone), the metadata shard has made the auto-delete, and the
    // deletes below reach it after that.
    let mut polls = 0;
    loop {
        let (probe, _probe_events) = other.channel().await;
        let args = BasicGetArguments::new("auto.q").no_ack(true).finish();
        if within("basic.get", probe.basic_get(args)).await.is_err() {
            break;
        }
        polls += 1;
        assert!(polls < 500, "auto.q was never auto-deleted");
        let _ = probe.close().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queue_delete = tokio::spawn(async move {
        let deleted = queue_channel
            .queue_delete(QueueDeleteArguments::new("auto.q"))
            .await;
        deleted.is_ok()
    });
    let exchange_delete = tokio::spawn(async move {
        let deleted = exchange_channel
            .exchange_delete(ExchangeDeleteArguments::new("auto.x"))
            .await;
        deleted.is_ok()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !queue_delete.is_finished(),
        "queue.delete-ok came before the auto-delete it reports was stored"
    );
    assert!(
        !exchange_delete.is_finished(),
        "exchange.delete-ok came before the auto-delete it reports was stored"
    );
    std::fs::remove_file(&filler_path).expect("free the space");
    let queue_deleted = within("queue.delete-ok after space returns", queue_delete)
        .await
        .expect("delete task");
    assert!(queue_deleted, "queue.delete-ok");
    let exchange_deleted = within("exchange.delete-ok after space returns", exchange_delete)
        .await
        .expect("delete task");
    assert!(exchange_deleted, "exchange.delete-ok");
    drop(other);
    drop(client);

    let data_dir = broker.kill9();
    let broker = Broker::start_in(&data_dir, SHARDS);
    let client = Client::connect(&broker).await;
    assert!(!exists(&client, |_| ExistsCheck::Queue("auto.q".into())).await);
    assert!(!exists(&client, |_| ExistsCheck::Exchange("auto.x".into())).await);
    drop(client);
    drop(broker);
}

/// Regression: a binding repeated with its arguments in another order is the same binding
/// (RabbitMQ compares argument tables unordered). The metadata shard once judged it new while
/// the binding table judged it a duplicate, and the broker crashed on its own assertion. The
/// binds go over raw AMQP: a field table keeps its order there, while amqprs sorts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_repeated_with_reordered_arguments_is_the_same_binding() {
    use common::raw::RawClient;
    use hare::protocol::{FieldTable, FieldValue, Method, QueueBind, QueueUnbind, ShortStr};
    let broker = Broker::start(SHARDS);
    let short = |text: &str| ShortStr::copy_from_str(text).expect("short string");
    let arguments = |order: [(&str, &'static str); 2]| -> FieldTable {
        order
            .into_iter()
            .map(|(name, value)| (short(name), FieldValue::LongStr(value.as_bytes().into())))
            .collect()
    };
    let x_match = ("x-match", "all");
    let kind = ("kind", "order");
    let mut raw = RawClient::open(broker.addr);
    raw.open_channel(1);
    raw.declare_queue(1, "reordered");
    for order in [[x_match, kind], [kind, x_match]] {
        raw.send_method(
            1,
            QueueBind {
                queue: short("reordered"),
                exchange: short("amq.headers"),
                arguments: arguments(order),
                ..Default::default()
            },
        );
        match raw.next_method() {
            (1, Method::QueueBindOk(_)) => {}
            other => panic!("expected queue.bind-ok, got {other:?}"),
        }
    }
    // One binding: unbinding it once leaves nothing for a matching message to reach.
    raw.send_method(
        1,
        QueueUnbind {
            queue: short("reordered"),
            exchange: short("amq.headers"),
            arguments: arguments([kind, x_match]),
            ..Default::default()
        },
    );
    match raw.next_method() {
        (1, Method::QueueUnbindOk(_)) => {}
        other => panic!("expected queue.unbind-ok, got {other:?}"),
    }
    let client = Client::connect(&broker).await;
    let (channel, _events) = client.channel().await;
    let mut headers = amqprs::FieldTable::new();
    headers.insert(
        "kind".try_into().expect("field name"),
        amqprs::FieldValue::from("order"),
    );
    within(
        "basic.publish",
        channel.basic_publish(
            BasicProperties::default().with_headers(headers).finish(),
            b"unrouted".to_vec(),
            BasicPublishArguments::new("amq.headers", ""),
        ),
    )
    .await
    .expect("basic.publish");
    assert!(drain(&channel, "reordered").await.is_empty());
    // The broker is still alive for everyone.
    client.assert_usable().await;
}
