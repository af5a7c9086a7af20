//! amqprs helpers shared by the client-level tests: connecting to a test broker, callbacks that
//! turn channel and connection closes, server cancels, confirms and returns into awaitable
//! events, and a timeout on every wait so a broker bug fails the test instead of hanging it.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use amqprs::callbacks::{ChannelCallback, ConnectionCallback};
use amqprs::channel::{
    BasicConsumeArguments, BasicGetArguments, BasicPublishArguments, Channel, ConsumerMessage,
    QueueDeclareArguments,
};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::{
    Ack, BasicProperties, Cancel, Close, CloseChannel, FieldTable, FieldValue, Nack, Return,
};
use async_trait::async_trait;
use tokio::sync::mpsc;

/// What amqprs callbacks return.
type Result<T> = std::result::Result<T, amqprs::error::Error>;

use crate::common::Broker;

/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Something the server sent a channel outside a request/response pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Closed {
        code: u16,
        text: String,
    },
    Cancelled(String),
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
    },
    Returned {
        code: u16,
        text: String,
        routing_key: String,
        body: Vec<u8>,
    },
}

/// The events of one channel, in the order the server sent them.
pub struct Events(mpsc::UnboundedReceiver<Event>);

impl Events {
    pub async fn next(&mut self) -> Event {
        within("a channel event", self.0.recv())
            .await
            .expect("channel event stream ended")
    }

    /// The next event, waiting without a limit; None once the stream ends. For a task that
    /// is aborted when it is no longer needed.
    pub async fn next_unbounded(&mut self) -> Option<Event> {
        self.0.recv().await
    }

    /// An event the server already sent, if any, without waiting.
    pub fn already_sent(&mut self) -> Option<Event> {
        self.0.try_recv().ok()
    }

    /// Skips events until the channel.close; returns its code and text.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Event::Closed { code, text } = self.next().await {
                return (code, text);
            }
        }
    }

    /// Waits until every publish numbered 1..=count is confirmed (single or multiple acks);
    /// panics on a nack. Returns the other events seen meanwhile, in order.
    pub async fn confirmed(&mut self, count: u64) -> Vec<Event> {
        let mut acked = vec![false; count as usize + 1];
        let mut settled = 0;
        let mut others = Vec::new();
        while settled < count {
            match self.next().await {
                Event::Ack { tag, multiple } => {
                    assert!((1..=count).contains(&tag), "ack of unknown tag {tag}");
                    if multiple {
                        acked[1..=tag as usize].fill(true);
                    } else {
                        assert!(!acked[tag as usize], "tag {tag} acked twice");
                        acked[tag as usize] = true;
                    }
                    while settled < count && acked[settled as usize + 1] {
                        settled += 1;
                    }
                }
                Event::Nack { tag, .. } => panic!("publish {tag} was nacked"),
                other => others.push(other),
            }
        }
        others
    }

    /// Waits for the channel.close and checks its code and the start of its text.
    pub async fn expect_close(&mut self, code: u16, text_prefix: &str) {
        let (got_code, text) = self.closed().await;
        assert_eq!(got_code, code, "reply code (text {text:?})");
        assert!(
            text.starts_with(text_prefix),
            "reply text {text:?} should start with {text_prefix:?}"
        );
    }
}

struct ChannelEvents(mpsc::UnboundedSender<Event>);

#[async_trait]
impl ChannelCallback for ChannelEvents {
    async fn close(&mut self, _: &Channel, close: CloseChannel) -> Result<()> {
        let _ = self.0.send(Event::Closed {
            code: close.reply_code(),
            text: close.reply_text().clone(),
        });
        Ok(())
    }
    async fn cancel(&mut self, _: &Channel, cancel: Cancel) -> Result<()> {
        let _ = self.0.send(Event::Cancelled(cancel.consumer_tag().clone()));
        Ok(())
    }
    async fn flow(&mut self, _: &Channel, active: bool) -> Result<bool> {
        Ok(active)
    }
    async fn publish_ack(&mut self, _: &Channel, ack: Ack) {
        let _ = self.0.send(Event::Ack {
            tag: ack.delivery_tag(),
            multiple: ack.mutiple(),
        });
    }
    async fn publish_nack(&mut self, _: &Channel, nack: Nack) {
        let _ = self.0.send(Event::Nack {
            tag: nack.delivery_tag(),
            multiple: nack.multiple(),
        });
    }
    async fn publish_return(
        &mut self,
        _: &Channel,
        ret: Return,
        _: BasicProperties,
        body: Vec<u8>,
    ) {
        let _ = self.0.send(Event::Returned {
            code: ret.reply_code(),
            text: ret.reply_text().clone(),
            routing_key: ret.routing_key().clone(),
            body,
        });
    }
}

struct ConnectionEvents(mpsc::UnboundedSender<(u16, String)>);

#[async_trait]
impl ConnectionCallback for ConnectionEvents {
    async fn close(&mut self, _: &Connection, close: Close) -> Result<()> {
        let _ = self
            .0
            .send((close.reply_code(), close.reply_text().clone()));
        Ok(())
    }
    async fn blocked(&mut self, _: &Connection, _: String) {}
    async fn unblocked(&mut self, _: &Connection) {}
    async fn secret_updated(&mut self, _: &Connection) {}
}

/// An open connection and the connection.close the server may send it.
pub struct Client {
    pub connection: Connection,
    closes: mpsc::UnboundedReceiver<(u16, String)>,
}

impl Client {
    pub async fn connect(broker: &Broker) -> Client {
        Client::connect_as(broker, "guest", "guest", "/")
            .await
            .expect("open connection")
    }

    /// Logs in as `user` on `vhost`; Err if the broker refuses.
    pub async fn connect_as(
        broker: &Broker,
        user: &str,
        password: &str,
        vhost: &str,
    ) -> std::result::Result<Client, amqprs::error::Error> {
        let mut args = OpenConnectionArguments::new("127.0.0.1", broker.port(), user, password);
        args.virtual_host(vhost);
        let connection = within("connection.open", Connection::open(&args)).await?;
        let (sender, closes) = mpsc::unbounded_channel();
        connection
            .register_callback(ConnectionEvents(sender))
            .await
            .expect("register connection callback");
        Ok(Client { connection, closes })
    }

    /// A new channel with its event stream.
    pub async fn channel(&self) -> (Channel, Events) {
        let channel = within("channel.open", self.connection.open_channel(None))
            .await
            .expect("open channel");
        let (sender, events) = mpsc::unbounded_channel();
        channel
            .register_callback(ChannelEvents(sender))
            .await
            .expect("register channel callback");
        (channel, Events(events))
    }

    /// Waits for the server's connection.close and checks its code and the start of its text.
    pub async fn expect_close(&mut self, code: u16, text_prefix: &str) {
        let (got_code, text) = within("connection.close", self.closes.recv())
            .await
            .expect("connection close stream ended");
        assert_eq!(got_code, code, "reply code (text {text:?})");
        assert!(
            text.starts_with(text_prefix),
            "reply text {text:?} should start with {text_prefix:?}"
        );
    }

    /// Proves the connection still works: a new channel declares, uses and deletes a queue.
    pub async fn assert_usable(&self) {
        let (channel, _events) = self.channel().await;
        let queue = declare(&channel, QueueDeclareArguments::exclusive_server_named()).await;
        publish(&channel, "", &queue, b"still alive").await;
        let (_, _, body) = within("basic.get", async {
            loop {
                if let Some(message) = get(&channel, &queue, true).await {
                    return message;
                }
            }
        })
        .await;
        assert_eq!(body, b"still alive");
        within("channel.close", channel.close())
            .await
            .expect("close channel");
    }
}

/// A field table of (name, value) pairs, for declare, bind and consume arguments and headers.
pub fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
    let mut table = FieldTable::new();
    for (name, value) in pairs {
        table.insert((*name).try_into().expect("field name"), value.clone());
    }
    table
}

/// queue.declare arguments for a queue with `x-` arguments.
pub fn queue_with(
    name: &str,
    durable: bool,
    pairs: &[(&str, FieldValue)],
) -> QueueDeclareArguments {
    QueueDeclareArguments::new(name)
        .durable(durable)
        .arguments(table(pairs))
        .finish()
}

/// Ready messages, as a passive declare reports them.
pub async fn ready(channel: &Channel, queue: &str) -> u32 {
    let passive = QueueDeclareArguments::new(queue).passive(true).finish();
    let (_, count, _) = within("passive declare", channel.queue_declare(passive))
        .await
        .expect("queue.declare")
        .expect("declare-ok");
    count
}

/// Polls until the queue holds `count` ready messages (at most 10 s).
pub async fn until_ready(channel: &Channel, queue: &str, count: u32) {
    for _ in 0..400 {
        if ready(channel, queue).await == count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "queue {queue} never had {count} ready messages (has {})",
        ready(channel, queue).await
    );
}

/// Every message now in `queue`, fetched with basic.get (no-ack) until get-empty: bodies.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some((_, _, body)) = get(channel, queue, true).await {
        bodies.push(String::from_utf8(body).expect("utf-8"));
    }
    bodies
}

/// Puts the channel in confirm mode.
pub async fn confirm_select(channel: &Channel) {
    within("confirm.select", channel.confirm_select(Default::default()))
        .await
        .expect("confirm.select");
}

/// Declares a queue; returns its name.
pub async fn declare(channel: &Channel, args: QueueDeclareArguments) -> String {
    let (name, _, _) = within("queue.declare", channel.queue_declare(args))
        .await
        .expect("queue.declare")
        .expect("declare-ok");
    name
}

pub async fn publish(channel: &Channel, exchange: &str, routing_key: &str, body: &[u8]) {
    publish_with(
        channel,
        exchange,
        routing_key,
        BasicProperties::default(),
        body,
    )
    .await;
}

pub async fn publish_with(
    channel: &Channel,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
    body: &[u8],
) {
    within(
        "basic.publish",
        channel.basic_publish(
            properties,
            body.to_vec(),
            BasicPublishArguments::new(exchange, routing_key),
        ),
    )
    .await
    .expect("basic.publish");
}

/// basic.get; None on get-empty.
pub async fn get(
    channel: &Channel,
    queue: &str,
    no_ack: bool,
) -> Option<amqprs::channel::GetMessage> {
    let args = BasicGetArguments::new(queue).no_ack(no_ack).finish();
    within("basic.get", channel.basic_get(args))
        .await
        .expect("basic.get")
}

/// A consumer's deliveries.
pub struct Deliveries {
    pub tag: String,
    receiver: mpsc::UnboundedReceiver<ConsumerMessage>,
}

/// One delivery: tag, redelivered flag, properties and body.
pub struct Delivery {
    pub delivery_tag: u64,
    pub redelivered: bool,
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

impl Deliveries {
    /// The deliveries of a consumer started with `basic_consume_rx` directly (to pass
    /// consume arguments).
    pub fn from_parts(tag: String, receiver: mpsc::UnboundedReceiver<ConsumerMessage>) -> Self {
        Deliveries { tag, receiver }
    }

    pub async fn next(&mut self) -> Delivery {
        let message = within("basic.deliver", self.receiver.recv())
            .await
            .expect("consumer stream ended");
        let deliver = message.deliver.expect("deliver");
        Delivery {
            delivery_tag: deliver.delivery_tag(),
            redelivered: deliver.redelivered(),
            routing_key: deliver.routing_key().clone(),
            properties: message.basic_properties.expect("properties"),
            body: message.content.expect("content"),
        }
    }

    /// The next `count` bodies, as strings.
    pub async fn bodies(&mut self, count: usize) -> Vec<String> {
        let mut bodies = Vec::with_capacity(count);
        for _ in 0..count {
            bodies.push(String::from_utf8(self.next().await.body).expect("utf-8 body"));
        }
        bodies
    }

    /// Waits until the stream ends (the channel closed or the consumer was cancelled).
    pub async fn ended(&mut self) {
        while within("consumer stream end", self.receiver.recv())
            .await
            .is_some()
        {}
    }
}

pub async fn consume(channel: &Channel, queue: &str, no_ack: bool) -> Deliveries {
    let args = BasicConsumeArguments::new(queue, "")
        .manual_ack(!no_ack)
        .finish();
    let (tag, receiver) = within("basic.consume", channel.basic_consume_rx(args))
        .await
        .expect("basic.consume");
    Deliveries { tag, receiver }
}
