//! Frame-level dispatch after the handshake: heartbeats, channel 0 methods, channel lifecycle,
//! content frames, and the routing of channel methods to their handlers. Every frame the peer
//! can send in the wrong place gets RabbitMQ's exception (docs/rabbitmq-compatibility.md §4).

use std::rc::Rc;

use crate::connection::channel::{Channel, ChannelState};
use crate::connection::content::Completed;
use crate::connection::ConnectionShared;
use crate::connection::{
    basic_methods, exchange_methods, publish, queue_methods, release_channel, stats,
};
use crate::exception::Exception;
use crate::ids::ChannelId;
use crate::protocol::{
    AccessRequestOk, ChannelFlowOk, ChannelOpenOk, ContentHeader, Frame, FrameType, HardError,
    LongStr, Method,
};
use crate::shard::user_limits;
use crate::shard::Shard;

pub enum Flow {
    Continue,
    /// The connection is done (close handshake finished).
    Stop,
}

pub async fn frame(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    frame: Frame,
) -> Result<Flow, Exception> {
    match frame.frame_type {
        FrameType::Heartbeat => {
            if frame.channel != 0 {
                return Err(Exception::connection(
                    HardError::UnexpectedFrame,
                    format!("heartbeat frame on channel {}", frame.channel),
                ));
            }
            Ok(Flow::Continue)
        }
        FrameType::Method => {
            let method = Method::decode(&frame.payload).map_err(|error| match error {
                crate::protocol::DecodeError::UnknownMethod {
                    class_id,
                    method_id,
                } => Exception::connection(
                    HardError::CommandInvalid,
                    format!("unknown method {class_id}/{method_id}"),
                ),
                other => {
                    let exception = Exception::connection(
                        HardError::FrameError,
                        format!("cannot decode method frame: {other}"),
                    );
                    // Like RabbitMQ, name the method whose arguments did not decode.
                    match frame.payload.get(..4) {
                        Some(&[c0, c1, m0, m1]) => exception.with_method(
                            u16::from_be_bytes([c0, c1]),
                            u16::from_be_bytes([m0, m1]),
                        ),
                        _ => exception,
                    }
                }
            })?;
            let class_id = method.class_id();
            let method_id = method.method_id();
            let result = if frame.channel == 0 {
                channel_zero(connection, method)
            } else {
                channel_method(shard, connection, frame.channel, method).await
            };
            result.map_err(|error| error.with_method(class_id, method_id))
        }
        FrameType::Header => {
            let header = ContentHeader::decode(&frame.payload).map_err(|error| match error {
                // A header of the wrong class is an unexpected frame, not a framing error.
                crate::protocol::DecodeError::BadClass { found, .. } => Exception::connection(
                    HardError::UnexpectedFrame,
                    format!("expected content header for class 60, got one for class {found}"),
                ),
                other => Exception::connection(
                    HardError::FrameError,
                    format!("cannot decode content header: {other}"),
                ),
            })?;
            let completed = {
                let mut state = connection.state.borrow_mut();
                let channel = content_channel(&mut state.channels, frame.channel)?;
                let Some(channel) = channel else {
                    return Ok(Flow::Continue);
                };
                channel
                    .content
                    .header(header, shard.config.message_size_max)?
            };
            if let Some(completed) = completed {
                published(shard, connection, frame.channel, completed).await?;
            }
            Ok(Flow::Continue)
        }
        FrameType::Body => {
            let completed = {
                let mut state = connection.state.borrow_mut();
                let channel = content_channel(&mut state.channels, frame.channel)?;
                let Some(channel) = channel else {
                    return Ok(Flow::Continue);
                };
                channel.content.body(frame.payload)?
            };
            if let Some(completed) = completed {
                published(shard, connection, frame.channel, completed).await?;
            }
            Ok(Flow::Continue)
        }
    }
}

/// The channel a content frame belongs to. Ok(None) if the channel is closing (content for
/// it is dropped).
fn content_channel(
    channels: &mut crate::fast_map::FastMap<u16, Channel>,
    id: u16,
) -> Result<Option<&mut Channel>, Exception> {
    if id == 0 {
        return Err(Exception::connection(
            HardError::UnexpectedFrame,
            "content frame on channel 0",
        ));
    }
    match channels.get_mut(&id) {
        Some(channel) if channel.state == ChannelState::Closing => Ok(None),
        Some(channel) => Ok(Some(channel)),
        None => Err(Exception::connection(
            HardError::ChannelError,
            format!("expected 'channel.open' on channel {id}"),
        )),
    }
}

async fn published(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: u16,
    completed: Completed,
) -> Result<(), Exception> {
    publish::complete(shard, connection, ChannelId(channel), completed)
        .await
        .map_err(|error| error.with_method(60, 40))
}

fn channel_zero(connection: &Rc<ConnectionShared>, method: Method) -> Result<Flow, Exception> {
    match method {
        Method::ConnectionClose(_) => {
            connection.write_method(0, &Method::ConnectionCloseOk(Default::default()));
            Ok(Flow::Stop)
        }
        Method::ConnectionUpdateSecret(_) => {
            connection.write_method(0, &Method::ConnectionUpdateSecretOk(Default::default()));
            Ok(Flow::Continue)
        }
        // Any other method on channel 0 is a channel error, as in RabbitMQ ("unexpected method
        // in connection state running"); acknowledgements of our own connection.blocked would
        // arrive here too, but clients send none. So is a close-ok: the one that answers our
        // connection.close never gets here (`closing_frame_ends_connection`), and one sent
        // unasked must not end the connection without a word.
        other => Err(Exception::connection(
            HardError::ChannelError,
            format!("unexpected method {} on channel 0", other.name()),
        )),
    }
}

async fn channel_method(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    id: u16,
    method: Method,
) -> Result<Flow, Exception> {
    if matches!(method, Method::ChannelOpen(_)) {
        admit_channel(shard, connection, id).await?;
    }
    if let Some(flow) = channel_lifecycle(shard, connection, id, &method)? {
        return Ok(flow);
    }
    let channel = ChannelId(id);
    match method {
        Method::ChannelFlow(flow) => {
            if !flow.active {
                return Err(Exception::not_implemented(
                    "active=false is not supported by this broker",
                ));
            }
            connection.write_method(id, &Method::ChannelFlowOk(ChannelFlowOk { active: true }));
        }
        Method::ChannelFlowOk(_) => {}
        // The client's answer to a server-sent basic.cancel (docs/rabbitmq-compatibility.md §14).
        Method::BasicCancelOk(_) => {}
        Method::AccessRequest(_) => {
            connection.write_method(id, &Method::AccessRequestOk(AccessRequestOk { ticket: 1 }));
        }
        Method::ExchangeDeclare(m) => {
            exchange_methods::declare(shard, connection, channel, m).await?
        }
        Method::ExchangeDelete(m) => {
            exchange_methods::delete(shard, connection, channel, m).await?
        }
        Method::ExchangeBind(m) => exchange_methods::bind(shard, connection, channel, m).await?,
        Method::ExchangeUnbind(m) => {
            exchange_methods::unbind(shard, connection, channel, m).await?
        }
        Method::QueueDeclare(m) => queue_methods::declare(shard, connection, channel, m).await?,
        Method::QueueBind(m) => queue_methods::bind(shard, connection, channel, m).await?,
        Method::QueueUnbind(m) => queue_methods::unbind(shard, connection, channel, m).await?,
        Method::QueuePurge(m) => queue_methods::purge(shard, connection, channel, m).await?,
        Method::QueueDelete(m) => queue_methods::delete(shard, connection, channel, m).await?,
        Method::BasicPublish(m) => publish::start(connection, channel, m)?,
        Method::BasicQos(m) => basic_methods::qos(shard, connection, channel, m)?,
        Method::BasicConsume(m) => basic_methods::consume(shard, connection, channel, m).await?,
        Method::BasicCancel(m) => basic_methods::cancel(shard, connection, channel, m).await?,
        Method::BasicGet(m) => basic_methods::get(shard, connection, channel, m).await?,
        Method::BasicAck(m) => {
            basic_methods::settle(shard, connection, channel, m.delivery_tag, m.multiple, None)?
        }
        Method::BasicNack(m) => basic_methods::settle(
            shard,
            connection,
            channel,
            m.delivery_tag,
            m.multiple,
            Some(m.requeue),
        )?,
        Method::BasicReject(m) => basic_methods::settle(
            shard,
            connection,
            channel,
            m.delivery_tag,
            false,
            Some(m.requeue),
        )?,
        Method::BasicRecover(m) => {
            basic_methods::recover(shard, connection, channel, m.requeue, true)?
        }
        Method::BasicRecoverAsync(m) => {
            basic_methods::recover(shard, connection, channel, m.requeue, false)?
        }
        Method::TxSelect(_) => basic_methods::tx_select(connection, channel)?,
        Method::TxCommit(_) => basic_methods::tx_commit(shard, connection, channel).await?,
        Method::TxRollback(_) => basic_methods::tx_rollback(connection, channel)?,
        Method::ConfirmSelect(m) => basic_methods::confirm_select(connection, channel, m.nowait)?,
        other => {
            return Err(Exception::connection(
                HardError::CommandInvalid,
                format!("unimplemented method {}", other.name()),
            ))
        }
    }
    Ok(Flow::Continue)
}

/// Before a channel.open the connection itself allows (a new channel below channel_max,
/// which `channel_lifecycle` checks first, as RabbitMQ does): the user's `max-channels`.
async fn admit_channel(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    id: u16,
) -> Result<(), Exception> {
    let user = {
        let state = connection.state.borrow();
        let channel_max = usize::from(state.channel_max);
        let open = state.channels.len();
        if state.channels.contains_key(&id) || (channel_max != 0 && open >= channel_max) {
            return Ok(());
        }
        state.user.clone()
    };
    user_limits::admit_channel(shard, connection.id, &user).await
}

/// Channel open, close and close-ok, which are valid in states other methods are not, and the
/// state checks every other method passes first. `Some` when the method was handled (or
/// dropped on a closing channel) here; `None` when it goes on to its handler.
fn channel_lifecycle(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    id: u16,
    method: &Method,
) -> Result<Option<Flow>, Exception> {
    let mut state = connection.state.borrow_mut();
    let channel_max = state.channel_max;
    match (method, state.channels.get(&id).map(|c| c.state)) {
        (Method::ChannelOpen(_), None) => {
            // RabbitMQ bounds the number of open channels (closing ones included), not the
            // channel numbers, with 530 and this text (its close names no method; ours names
            // channel.open, docs/rabbitmq-compatibility.md).
            let open = state.channels.len();
            if channel_max != 0 && open >= usize::from(channel_max) {
                return Err(Exception::connection(
                    HardError::NotAllowed,
                    format!(
                        "number of channels opened ({open}) has reached the negotiated channel_max ({channel_max})"
                    ),
                ));
            }
            state.channels.insert(id, Channel::new(ChannelId(id)));
            user_limits::channels_changed(shard, connection.id, &state.user, state.channels.len());
            drop(state);
            connection.write_method(
                id,
                &Method::ChannelOpenOk(ChannelOpenOk {
                    channel_id: LongStr::default(),
                }),
            );
            Ok(Some(Flow::Continue))
        }
        (Method::ChannelOpen(_), Some(_)) => Err(Exception::connection(
            HardError::ChannelError,
            format!("second 'channel.open' seen on channel {id}"),
        )),
        (Method::ChannelClose(_), Some(_)) => {
            let mut channel = state.channels.remove(&id).expect("matched Some above");
            if let Some(tracker) = channel.confirm.as_mut() {
                // Confirms noted as due go out before close-ok, as they would have at once.
                crate::connection::events::write_confirms(connection, ChannelId(id), tracker);
            }
            stats::channel_closed(shard, &channel);
            release_channel(shard, connection.id, &state.vhost, &mut channel);
            user_limits::channels_changed(shard, connection.id, &state.user, state.channels.len());
            drop(state);
            connection.write_method(id, &Method::ChannelCloseOk(Default::default()));
            Ok(Some(Flow::Continue))
        }
        (Method::ChannelCloseOk(_), Some(ChannelState::Closing)) => {
            if let Some(channel) = state.channels.remove(&id) {
                stats::channel_closed(shard, &channel);
                user_limits::channels_changed(
                    shard,
                    connection.id,
                    &state.user,
                    state.channels.len(),
                );
            }
            Ok(Some(Flow::Continue))
        }
        // After a crossing close (both sides sent channel.close) we answered the client's
        // close and freed the channel; its close-ok for ours may still follow.
        (Method::ChannelCloseOk(_), None) => Ok(Some(Flow::Continue)),
        (_, Some(ChannelState::Closing)) => Ok(Some(Flow::Continue)),
        (_, None) => Err(Exception::connection(
            HardError::ChannelError,
            format!("expected 'channel.open' on channel {id}"),
        )),
        (_, Some(ChannelState::Open)) => {
            let channel = state.channels.get(&id).expect("matched Some above");
            if !channel.content.is_idle() {
                return Err(Exception::connection(
                    HardError::UnexpectedFrame,
                    format!(
                        "expected content header or body on channel {id}, got method {}",
                        method.name()
                    ),
                ));
            }
            Ok(None)
        }
    }
}
