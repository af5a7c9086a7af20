//! exchange.declare, delete, bind and unbind: checked and applied by the metadata shard.

use std::rc::Rc;

use crate::connection::requests::{change_binding, meta_change, BindingChange};
use crate::connection::ConnectionShared;
use crate::exception::Exception;
use crate::ids::ChannelId;
use crate::protocol::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete,
    ExchangeDeleteOk, ExchangeUnbind, ExchangeUnbindOk, Method,
};
use crate::shard::message::MetaRequest;
use crate::shard::Shard;
use crate::vhost::delta::{BindingDefinition, DestinationName};
use crate::vhost::rules;

pub async fn declare(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: ExchangeDeclare,
) -> Result<(), Exception> {
    let request = MetaRequest::ExchangeDeclare(rules::ExchangeDeclare {
        name: method.exchange,
        kind: method.kind,
        passive: method.passive,
        durable: method.durable,
        auto_delete: method.auto_delete,
        internal: method.internal,
        arguments: method.arguments,
    });
    meta_change(shard, connection, request).await?;
    if !method.nowait {
        connection.write_method(channel.0, &Method::ExchangeDeclareOk(ExchangeDeclareOk {}));
    }
    Ok(())
}

pub async fn delete(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: ExchangeDelete,
) -> Result<(), Exception> {
    let request = MetaRequest::ExchangeDelete {
        name: method.exchange,
        if_unused: method.if_unused,
    };
    meta_change(shard, connection, request).await?;
    if !method.nowait {
        connection.write_method(channel.0, &Method::ExchangeDeleteOk(ExchangeDeleteOk {}));
    }
    Ok(())
}

pub async fn bind(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: ExchangeBind,
) -> Result<(), Exception> {
    let binding = BindingDefinition {
        source: method.source,
        destination: DestinationName::Exchange(method.destination),
        routing_key: method.routing_key,
        arguments: method.arguments,
    };
    change_binding(shard, connection, BindingChange::Bind, binding).await?;
    if !method.nowait {
        connection.write_method(channel.0, &Method::ExchangeBindOk(ExchangeBindOk {}));
    }
    Ok(())
}

pub async fn unbind(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: ExchangeUnbind,
) -> Result<(), Exception> {
    let binding = BindingDefinition {
        source: method.source,
        destination: DestinationName::Exchange(method.destination),
        routing_key: method.routing_key,
        arguments: method.arguments,
    };
    change_binding(shard, connection, BindingChange::Unbind, binding).await?;
    if !method.nowait {
        connection.write_method(channel.0, &Method::ExchangeUnbindOk(ExchangeUnbindOk {}));
    }
    Ok(())
}
