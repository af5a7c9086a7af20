//! Declaring and inspecting the broker's topology, and the per-channel settings hareperf uses:
//! exchanges, queues (including passive declares for depth polling), bindings, purge, delete,
//! `basic.qos`, `confirm.select` and `basic.consume`.

use hare_protocol::{
    BasicConsume, BasicQos, ConfirmSelect, ExchangeDeclare, ExchangeDelete, FieldTable, Method,
    QueueBind, QueueDeclare, QueueDelete, QueuePurge, ShortStr,
};

use super::connection::Connection;
use super::error::ClientError;

/// How a queue is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
}

/// A name that must fit a short string.
pub fn short(name: &str) -> Result<ShortStr, ClientError> {
    ShortStr::copy_from_str(name).ok_or(ClientError::Uri {
        uri: name.to_string(),
        reason: "name longer than 255 bytes",
    })
}

impl Connection {
    pub fn exchange_declare(
        &mut self,
        channel: u16,
        exchange: &str,
        kind: &str,
        durable: bool,
    ) -> Result<(), ClientError> {
        self.exchange_declare_with(channel, exchange, kind, durable, FieldTable::new())
    }

    /// An exchange declare with arguments (`x-delayed-type`, for example).
    pub fn exchange_declare_with(
        &mut self,
        channel: u16,
        exchange: &str,
        kind: &str,
        durable: bool,
        arguments: FieldTable,
    ) -> Result<(), ClientError> {
        let request = ExchangeDeclare {
            exchange: short(exchange)?,
            kind: short(kind)?,
            durable,
            arguments,
            ..Default::default()
        };
        self.rpc(
            channel,
            Method::ExchangeDeclare(request),
            "exchange.declare-ok",
        )?;
        Ok(())
    }

    pub fn exchange_delete(&mut self, channel: u16, exchange: &str) -> Result<(), ClientError> {
        let request = ExchangeDelete {
            exchange: short(exchange)?,
            ..Default::default()
        };
        self.rpc(
            channel,
            Method::ExchangeDelete(request),
            "exchange.delete-ok",
        )?;
        Ok(())
    }

    /// Declares a queue; returns its message count.
    pub fn queue_declare(
        &mut self,
        channel: u16,
        queue: &str,
        options: QueueOptions,
    ) -> Result<u32, ClientError> {
        self.queue_declare_with(channel, queue, options, FieldTable::new())
    }

    /// A queue declare with arguments (`x-message-ttl`, `x-dead-letter-exchange`, …); returns
    /// its message count.
    pub fn queue_declare_with(
        &mut self,
        channel: u16,
        queue: &str,
        options: QueueOptions,
        arguments: FieldTable,
    ) -> Result<u32, ClientError> {
        let request = QueueDeclare {
            queue: short(queue)?,
            durable: options.durable,
            exclusive: options.exclusive,
            auto_delete: options.auto_delete,
            arguments,
            ..Default::default()
        };
        self.declare(channel, request)
    }

    /// A passive declare: the queue's ready message count, on any broker. A missing queue closes
    /// the channel with 404, which comes back as `ClientError::ChannelClosed`.
    pub fn queue_message_count(&mut self, channel: u16, queue: &str) -> Result<u32, ClientError> {
        let request = QueueDeclare {
            queue: short(queue)?,
            passive: true,
            ..Default::default()
        };
        self.declare(channel, request)
    }

    fn declare(&mut self, channel: u16, request: QueueDeclare) -> Result<u32, ClientError> {
        match self.rpc(channel, Method::QueueDeclare(request), "queue.declare-ok")? {
            Method::QueueDeclareOk(ok) => Ok(ok.message_count),
            other => Err(ClientError::Unexpected {
                expected: "queue.declare-ok",
                got: other.name(),
            }),
        }
    }

    pub fn queue_bind(
        &mut self,
        channel: u16,
        queue: &str,
        exchange: &str,
        routing_key: &str,
    ) -> Result<(), ClientError> {
        let request = QueueBind {
            queue: short(queue)?,
            exchange: short(exchange)?,
            routing_key: short(routing_key)?,
            arguments: FieldTable::new(),
            ..Default::default()
        };
        self.rpc(channel, Method::QueueBind(request), "queue.bind-ok")?;
        Ok(())
    }

    pub fn queue_purge(&mut self, channel: u16, queue: &str) -> Result<(), ClientError> {
        let request = QueuePurge {
            queue: short(queue)?,
            ..Default::default()
        };
        self.rpc(channel, Method::QueuePurge(request), "queue.purge-ok")?;
        Ok(())
    }

    pub fn queue_delete(&mut self, channel: u16, queue: &str) -> Result<(), ClientError> {
        let request = QueueDelete {
            queue: short(queue)?,
            ..Default::default()
        };
        self.rpc(channel, Method::QueueDelete(request), "queue.delete-ok")?;
        Ok(())
    }

    /// Per-consumer prefetch (global=false), as RabbitMQ and PerfTest use it.
    pub fn basic_qos(&mut self, channel: u16, prefetch_count: u16) -> Result<(), ClientError> {
        let request = BasicQos {
            prefetch_size: 0,
            prefetch_count,
            global: false,
        };
        self.rpc(channel, Method::BasicQos(request), "basic.qos-ok")?;
        Ok(())
    }

    pub fn confirm_select(&mut self, channel: u16) -> Result<(), ClientError> {
        self.rpc(
            channel,
            Method::ConfirmSelect(ConfirmSelect { nowait: false }),
            "confirm.select-ok",
        )?;
        Ok(())
    }

    pub fn basic_consume(
        &mut self,
        channel: u16,
        queue: &str,
        consumer_tag: &str,
        no_ack: bool,
    ) -> Result<(), ClientError> {
        let request = BasicConsume {
            queue: short(queue)?,
            consumer_tag: short(consumer_tag)?,
            no_ack,
            ..Default::default()
        };
        self.rpc(channel, Method::BasicConsume(request), "basic.consume-ok")?;
        Ok(())
    }
}
