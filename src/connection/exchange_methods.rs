//! exchange.declare, delete, bind and unbind: checked and applied by the metadata shard.

use std::rc::Rc;

use crate::connection::permissions::{self, Access, Resource};
use crate::connection::requests::{change_binding, meta_change, BindingChange};
use crate::connection::ConnectionShared;
use crate::exception::Exception;
use crate::ids::ChannelId;
use crate::protocol::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete,
    ExchangeDeleteOk, ExchangeUnbind, ExchangeUnbindOk, FieldValue, Method,
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
    if !method.passive && !method.exchange.is_empty() {
        check_declare(shard, connection, &method)?;
    }
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
    // The default and `amq.*` exchanges are refused by the rules first, as in RabbitMQ.
    let name = method.exchange.as_bytes();
    if !name.is_empty() && !name.starts_with(b"amq.") {
        permissions::check(
            shard,
            connection,
            Access::Configure,
            Resource::Exchange,
            name,
        )?;
    }
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
    permissions::check_binding(shard, connection, &binding)?;
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
    permissions::check_binding(shard, connection, &binding)?;
    change_binding(shard, connection, BindingChange::Unbind, binding).await?;
    if !method.nowait {
        connection.write_method(channel.0, &Method::ExchangeUnbindOk(ExchangeUnbindOk {}));
    }
    Ok(())
}

/// exchange.declare (not passive): configure on the exchange; for a new exchange with an
/// `alternate-exchange`, read on it and write on the alternate, as RabbitMQ checks.
fn check_declare(
    shard: &Shard,
    connection: &ConnectionShared,
    method: &ExchangeDeclare,
) -> Result<(), Exception> {
    let name = method.exchange.as_bytes();
    permissions::check(
        shard,
        connection,
        Access::Configure,
        Resource::Exchange,
        name,
    )?;
    let exists = {
        let registry = shard.registry.borrow();
        let state = connection.state.borrow();
        registry
            .vhost(&state.vhost)
            .is_some_and(|vhost| vhost.exchange(&method.exchange).is_some())
    };
    if exists || name.starts_with(b"amq.") {
        return Ok(());
    }
    let alternate = match method.arguments.get("alternate-exchange") {
        Some(FieldValue::LongStr(value)) => value.clone(),
        _ => return Ok(()),
    };
    permissions::check(shard, connection, Access::Read, Resource::Exchange, name)?;
    permissions::check(
        shard,
        connection,
        Access::Write,
        Resource::Exchange,
        &alternate,
    )
}
