//! Every class and method of AMQP 0-9-1 with RabbitMQ's extensions, declared once in the
//! `methods!` table below, which generates one struct per method, the `Method` enum and its
//! decoder and encoder.
//!
//! A method frame's payload is:
//!
//! ```text
//! class-id:u16  method-id:u16  arguments...
//! ```
//!
//! Arguments are written in declaration order with the domain types of `wire` (`bool` bit,
//! `u8` octet, `u16` short, `u32` long, `u64` longlong/timestamp, `ShortStr`, `LongStr`,
//! `FieldTable`); consecutive bits share one octet, first bit in the least significant bit.
//! Field names follow the spec with '-' turned into '_', and `type` becomes `kind`. Reserved
//! fields keep their spec names (`ticket`, `out_of_band`, `known_hosts`, ...). Decoding is
//! zero-copy: strings are slices of the payload. Bytes left after the last argument are an error.
//!
//! Quirk kept from RabbitMQ: `exchange.unbind-ok` is method 51, not 41.

use bytes::Bytes;

use super::error::DecodeError;
use super::types::{FieldTable, LongStr, ShortStr};
use super::wire::{Arg, ArgWriter, Put, Reader};

macro_rules! methods {
    ($(
        $class_id:literal, $method_id:literal, $name:literal, $Method:ident,
        sync: $sync:literal, content: $content:literal { $( $field:ident : $Type:ty ),* }
    )*) => {
        $(
            #[doc = concat!("`", $name, "` (class ", stringify!($class_id), ", method ",
                stringify!($method_id), ").")]
            #[derive(Clone, Debug, PartialEq, Default)]
            pub struct $Method {
                $( pub $field: $Type, )*
            }

            impl $Method {
                pub const CLASS_ID: u16 = $class_id;
                pub const METHOD_ID: u16 = $method_id;
                pub const NAME: &'static str = $name;

                #[allow(unused_variables)]
                fn read_args(r: &mut Reader<'_>) -> Result<$Method, DecodeError> {
                    // Struct expression fields are evaluated in the order written, which is
                    // the wire order.
                    Ok($Method { $( $field: Arg::read(r)?, )* })
                }

                #[allow(unused_variables)]
                fn write_args(&self, w: &mut ArgWriter<'_>) {
                    $( Arg::write(&self.$field, w); )*
                }
            }

            impl From<$Method> for Method {
                fn from(m: $Method) -> Method {
                    Method::$Method(m)
                }
            }
        )*

        /// Any AMQP 0-9-1 method, one variant per method struct.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Method {
            $( $Method($Method), )*
        }

        impl Method {
            /// Decodes a method frame payload (starting with class-id and method-id).
            pub fn decode(payload: &Bytes) -> Result<Method, DecodeError> {
                let mut r = Reader::new(payload);
                let class_id = r.u16()?;
                let method_id = r.u16()?;
                let method = match (class_id, method_id) {
                    $( ($class_id, $method_id) => Method::$Method($Method::read_args(&mut r)?), )*
                    _ => return Err(DecodeError::UnknownMethod { class_id, method_id }),
                };
                r.expect_empty()?;
                Ok(method)
            }

            /// Appends the method frame payload: class-id, method-id, arguments.
            pub fn encode(&self, out: &mut Vec<u8>) {
                out.put_u16(self.class_id());
                out.put_u16(self.method_id());
                let mut w = ArgWriter::new(out);
                match self {
                    $( Method::$Method(m) => m.write_args(&mut w), )*
                }
            }

            pub fn class_id(&self) -> u16 {
                match self {
                    $( Method::$Method(_) => $class_id, )*
                }
            }

            pub fn method_id(&self) -> u16 {
                match self {
                    $( Method::$Method(_) => $method_id, )*
                }
            }

            /// The spec name, e.g. "basic.publish".
            pub fn name(&self) -> &'static str {
                match self {
                    $( Method::$Method(_) => $name, )*
                }
            }

            /// True for the methods followed by a content header and body frames:
            /// basic.publish, basic.return, basic.deliver and basic.get-ok.
            pub fn has_content(&self) -> bool {
                match self {
                    $( Method::$Method(_) => $content, )*
                }
            }

            /// True for requests the spec marks synchronous (the peer answers with a
            /// `-ok` method unless `nowait` is set).
            pub fn is_synchronous_request(&self) -> bool {
                match self {
                    $( Method::$Method(_) => $sync, )*
                }
            }
        }

        #[cfg(test)]
        impl Method {
            /// One value of every method, in table order, with random field values.
            pub(crate) fn samples(rng: &mut super::test_support::Rng) -> Vec<Method> {
                use super::test_support::Sample;
                vec![ $( Method::$Method($Method { $( $field: Sample::sample(rng), )* }), )* ]
            }
        }

        /// The spec name of a method, e.g. `method_name(60, 40) == Some("basic.publish")`.
        pub fn method_name(class_id: u16, method_id: u16) -> Option<&'static str> {
            match (class_id, method_id) {
                $( ($class_id, $method_id) => Some($name), )*
                _ => None,
            }
        }
    };
}

methods! {
    10, 10, "connection.start", ConnectionStart, sync: true, content: false {
        version_major: u8,
        version_minor: u8,
        server_properties: FieldTable,
        mechanisms: LongStr,
        locales: LongStr
    }
    10, 11, "connection.start-ok", ConnectionStartOk, sync: false, content: false {
        client_properties: FieldTable,
        mechanism: ShortStr,
        response: LongStr,
        locale: ShortStr
    }
    10, 20, "connection.secure", ConnectionSecure, sync: true, content: false {
        challenge: LongStr
    }
    10, 21, "connection.secure-ok", ConnectionSecureOk, sync: false, content: false {
        response: LongStr
    }
    10, 30, "connection.tune", ConnectionTune, sync: true, content: false {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16
    }
    10, 31, "connection.tune-ok", ConnectionTuneOk, sync: false, content: false {
        channel_max: u16,
        frame_max: u32,
        heartbeat: u16
    }
    10, 40, "connection.open", ConnectionOpen, sync: true, content: false {
        virtual_host: ShortStr,
        capabilities: ShortStr,
        insist: bool
    }
    10, 41, "connection.open-ok", ConnectionOpenOk, sync: false, content: false {
        known_hosts: ShortStr
    }
    10, 50, "connection.close", ConnectionClose, sync: true, content: false {
        reply_code: u16,
        reply_text: ShortStr,
        class_id: u16,
        method_id: u16
    }
    10, 51, "connection.close-ok", ConnectionCloseOk, sync: false, content: false {}
    10, 60, "connection.blocked", ConnectionBlocked, sync: false, content: false {
        reason: ShortStr
    }
    10, 61, "connection.unblocked", ConnectionUnblocked, sync: false, content: false {}
    10, 70, "connection.update-secret", ConnectionUpdateSecret, sync: true, content: false {
        new_secret: LongStr,
        reason: ShortStr
    }
    10, 71, "connection.update-secret-ok", ConnectionUpdateSecretOk, sync: false, content: false {}
    20, 10, "channel.open", ChannelOpen, sync: true, content: false { out_of_band: ShortStr }
    20, 11, "channel.open-ok", ChannelOpenOk, sync: false, content: false { channel_id: LongStr }
    20, 20, "channel.flow", ChannelFlow, sync: true, content: false { active: bool }
    20, 21, "channel.flow-ok", ChannelFlowOk, sync: false, content: false { active: bool }
    20, 40, "channel.close", ChannelClose, sync: true, content: false {
        reply_code: u16,
        reply_text: ShortStr,
        class_id: u16,
        method_id: u16
    }
    20, 41, "channel.close-ok", ChannelCloseOk, sync: false, content: false {}
    30, 10, "access.request", AccessRequest, sync: true, content: false {
        realm: ShortStr,
        exclusive: bool,
        passive: bool,
        active: bool,
        write: bool,
        read: bool
    }
    30, 11, "access.request-ok", AccessRequestOk, sync: false, content: false { ticket: u16 }
    40, 10, "exchange.declare", ExchangeDeclare, sync: true, content: false {
        ticket: u16,
        exchange: ShortStr,
        kind: ShortStr,
        passive: bool,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        nowait: bool,
        arguments: FieldTable
    }
    40, 11, "exchange.declare-ok", ExchangeDeclareOk, sync: false, content: false {}
    40, 20, "exchange.delete", ExchangeDelete, sync: true, content: false {
        ticket: u16,
        exchange: ShortStr,
        if_unused: bool,
        nowait: bool
    }
    40, 21, "exchange.delete-ok", ExchangeDeleteOk, sync: false, content: false {}
    40, 30, "exchange.bind", ExchangeBind, sync: true, content: false {
        ticket: u16,
        destination: ShortStr,
        source: ShortStr,
        routing_key: ShortStr,
        nowait: bool,
        arguments: FieldTable
    }
    40, 31, "exchange.bind-ok", ExchangeBindOk, sync: false, content: false {}
    40, 40, "exchange.unbind", ExchangeUnbind, sync: true, content: false {
        ticket: u16,
        destination: ShortStr,
        source: ShortStr,
        routing_key: ShortStr,
        nowait: bool,
        arguments: FieldTable
    }
    40, 51, "exchange.unbind-ok", ExchangeUnbindOk, sync: false, content: false {}
    50, 10, "queue.declare", QueueDeclare, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        passive: bool,
        durable: bool,
        exclusive: bool,
        auto_delete: bool,
        nowait: bool,
        arguments: FieldTable
    }
    50, 11, "queue.declare-ok", QueueDeclareOk, sync: false, content: false {
        queue: ShortStr,
        message_count: u32,
        consumer_count: u32
    }
    50, 20, "queue.bind", QueueBind, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        exchange: ShortStr,
        routing_key: ShortStr,
        nowait: bool,
        arguments: FieldTable
    }
    50, 21, "queue.bind-ok", QueueBindOk, sync: false, content: false {}
    50, 30, "queue.purge", QueuePurge, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        nowait: bool
    }
    50, 31, "queue.purge-ok", QueuePurgeOk, sync: false, content: false { message_count: u32 }
    50, 40, "queue.delete", QueueDelete, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        if_unused: bool,
        if_empty: bool,
        nowait: bool
    }
    50, 41, "queue.delete-ok", QueueDeleteOk, sync: false, content: false { message_count: u32 }
    50, 50, "queue.unbind", QueueUnbind, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        exchange: ShortStr,
        routing_key: ShortStr,
        arguments: FieldTable
    }
    50, 51, "queue.unbind-ok", QueueUnbindOk, sync: false, content: false {}
    60, 10, "basic.qos", BasicQos, sync: true, content: false {
        prefetch_size: u32,
        prefetch_count: u16,
        global: bool
    }
    60, 11, "basic.qos-ok", BasicQosOk, sync: false, content: false {}
    60, 20, "basic.consume", BasicConsume, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        consumer_tag: ShortStr,
        no_local: bool,
        no_ack: bool,
        exclusive: bool,
        nowait: bool,
        arguments: FieldTable
    }
    60, 21, "basic.consume-ok", BasicConsumeOk, sync: false, content: false {
        consumer_tag: ShortStr
    }
    60, 30, "basic.cancel", BasicCancel, sync: true, content: false {
        consumer_tag: ShortStr,
        nowait: bool
    }
    60, 31, "basic.cancel-ok", BasicCancelOk, sync: false, content: false {
        consumer_tag: ShortStr
    }
    60, 40, "basic.publish", BasicPublish, sync: false, content: true {
        ticket: u16,
        exchange: ShortStr,
        routing_key: ShortStr,
        mandatory: bool,
        immediate: bool
    }
    60, 50, "basic.return", BasicReturn, sync: false, content: true {
        reply_code: u16,
        reply_text: ShortStr,
        exchange: ShortStr,
        routing_key: ShortStr
    }
    60, 60, "basic.deliver", BasicDeliver, sync: false, content: true {
        consumer_tag: ShortStr,
        delivery_tag: u64,
        redelivered: bool,
        exchange: ShortStr,
        routing_key: ShortStr
    }
    60, 70, "basic.get", BasicGet, sync: true, content: false {
        ticket: u16,
        queue: ShortStr,
        no_ack: bool
    }
    60, 71, "basic.get-ok", BasicGetOk, sync: false, content: true {
        delivery_tag: u64,
        redelivered: bool,
        exchange: ShortStr,
        routing_key: ShortStr,
        message_count: u32
    }
    60, 72, "basic.get-empty", BasicGetEmpty, sync: false, content: false { cluster_id: ShortStr }
    60, 80, "basic.ack", BasicAck, sync: false, content: false {
        delivery_tag: u64,
        multiple: bool
    }
    60, 90, "basic.reject", BasicReject, sync: false, content: false {
        delivery_tag: u64,
        requeue: bool
    }
    60, 100, "basic.recover-async", BasicRecoverAsync, sync: false, content: false {
        requeue: bool
    }
    60, 110, "basic.recover", BasicRecover, sync: true, content: false { requeue: bool }
    60, 111, "basic.recover-ok", BasicRecoverOk, sync: false, content: false {}
    60, 120, "basic.nack", BasicNack, sync: false, content: false {
        delivery_tag: u64,
        multiple: bool,
        requeue: bool
    }
    85, 10, "confirm.select", ConfirmSelect, sync: true, content: false { nowait: bool }
    85, 11, "confirm.select-ok", ConfirmSelectOk, sync: false, content: false {}
    90, 10, "tx.select", TxSelect, sync: true, content: false {}
    90, 11, "tx.select-ok", TxSelectOk, sync: false, content: false {}
    90, 20, "tx.commit", TxCommit, sync: true, content: false {}
    90, 21, "tx.commit-ok", TxCommitOk, sync: false, content: false {}
    90, 30, "tx.rollback", TxRollback, sync: true, content: false {}
    90, 31, "tx.rollback-ok", TxRollbackOk, sync: false, content: false {}
}

#[cfg(test)]
#[path = "methods_tests.rs"]
mod tests;
