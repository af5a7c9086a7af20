//! The connection handshake: protocol header, start/start-ok (PLAIN and AMQPLAIN, and EXTERNAL
//! for a TLS client with a verified certificate), tune/tune-ok,
//! open/open-ok. Runs before the connection is registered on its shard, under the handshake
//! timeout. Errors during the handshake are connection errors (docs/rabbitmq-compatibility.md §4).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::Config;
use crate::connection::io::{FrameReader, Output, ReadError};
use crate::connection::server_properties::server_properties;
use crate::connection::transport::{PeerCertificate, WriteHalf};
use crate::connection::{ClientCapabilities, ConnectionState};
use crate::ids::ConnectionId;
use crate::protocol::{
    parse_protocol_header, write_method_frame, ConnectionClose, ConnectionOpenOk, ConnectionStart,
    ConnectionStartOk, ConnectionTune, DecodeError, FieldTable, FieldValue, FrameType, HardError,
    LongStr, Method, ProtocolHeader, ReplyCode, ShortStr, SoftError, PROTOCOL_HEADER,
};
use crate::shard::user_limits;
use crate::shard::vhost_limits::{self, ConnectionLimit, VHostSlot};
use crate::shard::Shard;
use crate::vhost::route::RouteScratch;

/// Frame size limit before tune-ok (RabbitMQ 4.1+ uses 8192 so large start-ok frames fit).
pub const FRAME_MAX_BEFORE_TUNE: u32 = 8192;
/// The smallest frame_max a client may choose in tune-ok (the 0-9-1 spec's FRAME-MIN-SIZE).
pub const FRAME_MIN_SIZE: u32 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("socket: {0}")]
    Read(#[from] ReadError),
    #[error("write: {0}")]
    Write(#[from] std::io::Error),
    #[error("unsupported protocol header")]
    BadProtocolHeader,
    #[error("refused: {code} {refusal}", code = .0.reply_code().code(), refusal = .0)]
    Refused(#[from] Refusal),
}

/// Why the handshake refused a client; the text is what connection.close tells it.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "unknown authentication mechanism '{}'",
        String::from_utf8_lossy(mechanism)
    )]
    UnknownMechanism { mechanism: Bytes },
    #[error("authentication failure: malformed response")]
    MalformedResponse,
    #[error("Login was refused using authentication mechanism {mechanism}. For details see the broker logfile. (user '{}')", String::from_utf8_lossy(user))]
    LoginRefused { mechanism: ShortStr, user: Bytes },
    #[error(
        "user '{}' can only connect via localhost",
        String::from_utf8_lossy(user)
    )]
    LoopbackOnly { user: Bytes },
    /// RabbitMQ's `fail_negotiation` text for a tune-ok value below the minimum or above
    /// (or, as 0, without) the server's limit.
    #[error(
        "negotiated {field} = {value}{detail} is {comparison} than the {bound} allowed value ({allowed})",
        detail = if *field == "channel_max" && *value == 0 { " (no limit)" } else { "" },
        comparison = if *too_high { "higher" } else { "lower" },
        bound = if *too_high { "maximum" } else { "minimum" },
    )]
    Negotiation {
        field: &'static str,
        value: u32,
        too_high: bool,
        allowed: u32,
    },
    #[error("connection refused: node connection limit ({limit}) is reached")]
    NodeConnectionLimit { limit: u32 },
    #[error("vhost {vhost} not found")]
    VhostNotFound { vhost: ShortStr },
    #[error("access to vhost '{vhost}' refused for user '{user}'")]
    VhostAccessRefused { vhost: ShortStr, user: ShortStr },
    #[error(
        "access to vhost '{vhost}' refused for user '{user}': connection limit ({limit}) is reached"
    )]
    VhostConnectionLimit {
        vhost: ShortStr,
        user: ShortStr,
        limit: i64,
    },
    #[error("{}", user_limits::connection_refusal_text(user, *limit))]
    UserConnectionLimit { user: ShortStr, limit: i64 },
    #[error("unexpected method {method} during the handshake")]
    UnexpectedMethod { method: &'static str },
    #[error("{0}")]
    Undecodable(DecodeError),
    #[error("unexpected frame during the handshake")]
    UnexpectedFrame,
}

impl Refusal {
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            Refusal::UnknownMechanism { .. } | Refusal::UnexpectedMethod { .. } => {
                ReplyCode::Hard(HardError::CommandInvalid)
            }
            Refusal::MalformedResponse => ReplyCode::Hard(HardError::SyntaxError),
            Refusal::LoginRefused { .. } | Refusal::LoopbackOnly { .. } => {
                ReplyCode::Soft(SoftError::AccessRefused)
            }
            Refusal::Negotiation { .. }
            | Refusal::NodeConnectionLimit { .. }
            | Refusal::VhostNotFound { .. }
            | Refusal::VhostAccessRefused { .. }
            | Refusal::VhostConnectionLimit { .. }
            | Refusal::UserConnectionLimit { .. } => ReplyCode::Hard(HardError::NotAllowed),
            Refusal::Undecodable(_) => ReplyCode::Hard(HardError::FrameError),
            Refusal::UnexpectedFrame => ReplyCode::Hard(HardError::UnexpectedFrame),
        }
    }
}

pub struct Negotiated {
    pub output: Output,
    pub state: ConnectionState,
    pub writer_stream: WriteHalf,
    /// The TLS session's protocol and cipher suite, for an AMQPS connection.
    pub tls: Option<crate::tls::session_info::SessionInfo>,
    /// The connection's place in the node's and its vhost's connection counts, given back
    /// when dropped.
    pub vhost_slot: VHostSlot,
}

struct Credentials {
    user: Bytes,
    /// None for EXTERNAL: the verified client certificate stands for the password.
    password: Option<Bytes>,
}

/// Mechanisms offered in connection.start. EXTERNAL only to a client whose certificate was
/// verified, first as in RabbitMQ's configuration for certificate login.
const MECHANISMS: &str = "PLAIN AMQPLAIN";
const MECHANISMS_WITH_EXTERNAL: &str = "EXTERNAL PLAIN AMQPLAIN";

/// Runs the handshake on a fresh socket, up to open-ok: the negotiated state, or why the
/// client was refused (it has been told, where the protocol allows).
pub async fn run(
    shard: &Rc<Shard>,
    reader: &mut FrameReader,
    mut writer: WriteHalf,
    peer_certificate: Option<PeerCertificate>,
    peer: SocketAddr,
    id: ConnectionId,
) -> Result<Negotiated, HandshakeError> {
    let header: [u8; 8] = reader.read_exact().await?;
    if parse_protocol_header(&header) != ProtocolHeader::Amqp091 {
        writer.write_all(&PROTOCOL_HEADER).await?;
        let _ = writer.flush().await;
        return Err(HandshakeError::BadProtocolHeader);
    }
    send_method(
        &mut writer,
        &Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: LongStr::from_static(if peer_certificate.is_some() {
                MECHANISMS_WITH_EXTERNAL
            } else {
                MECHANISMS
            }),
            locales: LongStr::from_static("en_US"),
        }),
    )
    .await?;

    let start_ok = match next_method(reader, FRAME_MAX_BEFORE_TUNE).await? {
        Method::ConnectionStartOk(start_ok) => start_ok,
        other => return refuse_unexpected(&mut writer, &other).await,
    };
    let capabilities = client_capabilities(&start_ok.client_properties);
    let client = Client {
        peer,
        certificate: peer_certificate.as_ref(),
        capabilities,
    };
    let credentials = log_in(shard, &mut writer, &start_ok, &client).await?;
    let Tuned {
        frame_max,
        channel_max,
        heartbeat_interval,
    } = tune(&shard.config, reader, &mut writer).await?;
    let open = match next_method(reader, frame_max).await? {
        Method::ConnectionOpen(open) => open,
        other => return refuse_unexpected(&mut writer, &other).await,
    };
    let user = ShortStr::try_from_bytes(credentials.user).unwrap_or_default();
    // RabbitMQ checks the node's connection limit, then the vhost's, then the user's, before
    // the user's access to the vhost.
    let vhost_slot = match vhost_limits::admit(shard, id, &open.virtual_host, &user).await {
        Ok(slot) => slot,
        Err(limit) => {
            let refusal = match limit {
                ConnectionLimit::Node(limit) => Refusal::NodeConnectionLimit { limit },
                ConnectionLimit::VHost(limit) => Refusal::VhostConnectionLimit {
                    vhost: open.virtual_host.clone(),
                    user,
                    limit,
                },
                ConnectionLimit::User(limit) => Refusal::UserConnectionLimit { user, limit },
            };
            return refuse(&mut writer, refusal, &Method::ConnectionOpen(open.clone())).await;
        }
    };
    if let Err(refusal) = check_vhost_access(shard, &open.virtual_host, &user) {
        return refuse(&mut writer, refusal, &Method::ConnectionOpen(open.clone())).await;
    }
    send_method(
        &mut writer,
        &Method::ConnectionOpenOk(ConnectionOpenOk {
            known_hosts: ShortStr::default(),
        }),
    )
    .await?;

    let access = crate::connection::permissions::ConnectionAccess::new(&user, &open.virtual_host);
    let state = ConnectionState {
        vhost: open.virtual_host.clone(),
        user,
        frame_max,
        channel_max,
        heartbeat_interval,
        capabilities,
        client_properties: start_ok.client_properties,
        auth_mechanism: start_ok.mechanism,
        channels: crate::fast_map::FastMap::default(),
        exclusive_queues: Vec::new(),
        route_scratch: RouteScratch::default(),
        route_queues: Vec::new(),
        deleting_queue: None,
        deferred_cancels: Vec::new(),
        access,
    };
    Ok(Negotiated {
        output: Output::new(),
        state,
        writer_stream: writer,
        // The caller, which opened the transport, fills it in.
        tls: None,
        vhost_slot,
    })
}

/// Who is logging in: what start-ok does not say.
struct Client<'a> {
    peer: SocketAddr,
    certificate: Option<&'a PeerCertificate>,
    capabilities: ClientCapabilities,
}

/// Checks the start-ok response: a known mechanism, well-formed credentials, and a user that
/// may log in from `peer`.
async fn log_in(
    shard: &Shard,
    writer: &mut WriteHalf,
    start_ok: &ConnectionStartOk,
    client: &Client<'_>,
) -> Result<Credentials, HandshakeError> {
    let (capabilities, peer) = (client.capabilities, client.peer);
    let credentials = match start_ok.mechanism.as_bytes() {
        b"PLAIN" => parse_plain(start_ok.response.as_bytes()),
        b"AMQPLAIN" => parse_amqplain(start_ok.response.bytes()),
        // Offered only with a verified certificate; without one it is a mechanism this
        // connection does not know (503), as RabbitMQ answers a mechanism it did not offer.
        // The user is the certificate's common name (RabbitMQ's `ssl_cert_login_from =
        // common_name`); the response, an authorisation identity at most, is ignored. A
        // certificate without a common name names no user: the login is refused below.
        b"EXTERNAL" if client.certificate.is_some() => Some(Credentials {
            user: client
                .certificate
                .and_then(|certificate| certificate.common_name.clone())
                .map(Bytes::from)
                .unwrap_or_default(),
            password: None,
        }),
        other => {
            let refusal = Refusal::UnknownMechanism {
                mechanism: Bytes::copy_from_slice(other),
            };
            let method = Method::ConnectionStartOk(start_ok.clone());
            return refuse(writer, refusal, &method).await;
        }
    };
    let Some(credentials) = credentials else {
        let method = Method::ConnectionStartOk(start_ok.clone());
        return refuse(writer, Refusal::MalformedResponse, &method).await;
    };
    if let Err(refusal) = authenticate(shard, &credentials, &start_ok.mechanism, peer) {
        // 403 with a close frame only for clients that asked for it; others get a bare close.
        if capabilities.authentication_failure_close {
            send_method(
                writer,
                &Method::ConnectionClose(ConnectionClose {
                    reply_code: SoftError::AccessRefused.code(),
                    reply_text: ShortStr::from_str_truncated(&format!(
                        "ACCESS_REFUSED - {refusal}"
                    )),
                    class_id: 10,
                    method_id: 11,
                }),
            )
            .await?;
            let _ = writer.flush().await;
            // Let the client read the close before the socket goes.
            glommio::timer::sleep(Duration::from_millis(100)).await;
        }
        return Err(HandshakeError::Refused(refusal));
    }
    Ok(credentials)
}

/// What tune and tune-ok settled.
struct Tuned {
    frame_max: u32,
    channel_max: u16,
    heartbeat_interval: Duration,
}

/// Sends connection.tune with our limits and checks the client's tune-ok against them.
async fn tune(
    config: &Config,
    reader: &mut FrameReader,
    writer: &mut WriteHalf,
) -> Result<Tuned, HandshakeError> {
    let heartbeat_secs = u16::try_from(config.heartbeat_interval.as_secs()).unwrap_or(u16::MAX);
    let tune_method = Method::ConnectionTune(ConnectionTune {
        channel_max: config.channel_max,
        frame_max: config.frame_max,
        heartbeat: heartbeat_secs,
    });
    send_method(writer, &tune_method).await?;
    let tune_ok = match next_method(reader, FRAME_MAX_BEFORE_TUNE).await? {
        Method::ConnectionTuneOk(tune_ok) => tune_ok,
        other => return refuse_unexpected(writer, &other).await,
    };
    let checks = [
        (
            "frame_max",
            tune_ok.frame_max,
            FRAME_MIN_SIZE,
            config.frame_max,
        ),
        (
            "channel_max",
            u32::from(tune_ok.channel_max),
            1,
            u32::from(config.channel_max),
        ),
    ];
    for (field, value, minimum, maximum) in checks {
        if let Err(refusal) = check_negotiated(field, value, minimum, maximum) {
            // RabbitMQ names connection.tune, the method whose limits were overstepped.
            return refuse(writer, refusal, &tune_method).await;
        }
    }
    let frame_max = tune_ok.frame_max;
    let channel_max = tune_ok.channel_max;
    Ok(Tuned {
        frame_max,
        channel_max,
        heartbeat_interval: Duration::from_secs(u64::from(tune_ok.heartbeat)),
    })
}

/// RabbitMQ's rule for a tune-ok value (`validate_negotiated_integer_value`): a client may
/// lower a limit, but not below `minimum`, and may not raise it or lift it with 0 unless the
/// server has none (`maximum` 0).
fn check_negotiated(
    field: &'static str,
    value: u32,
    minimum: u32,
    maximum: u32,
) -> Result<(), Refusal> {
    if value != 0 && value < minimum {
        return Err(Refusal::Negotiation {
            field,
            value,
            too_high: false,
            allowed: minimum,
        });
    }
    if maximum != 0 && (value == 0 || value > maximum) {
        return Err(Refusal::Negotiation {
            field,
            value,
            too_high: true,
            allowed: maximum,
        });
    }
    Ok(())
}

/// The next method on channel 0, skipping heartbeats (clients start them right after tune).
async fn next_method(reader: &mut FrameReader, frame_max: u32) -> Result<Method, HandshakeError> {
    loop {
        let frame = reader.next_frame(frame_max).await?;
        match frame.frame_type {
            FrameType::Heartbeat => continue,
            FrameType::Method if frame.channel == 0 => {
                return Method::decode(&frame.payload)
                    .map_err(|error| HandshakeError::Refused(Refusal::Undecodable(error)));
            }
            _ => return Err(HandshakeError::Refused(Refusal::UnexpectedFrame)),
        }
    }
}

/// Refuses a method that does not belong at this point of the handshake.
async fn refuse_unexpected<T>(
    writer: &mut WriteHalf,
    method: &Method,
) -> Result<T, HandshakeError> {
    let refusal = Refusal::UnexpectedMethod {
        method: method.name(),
    };
    refuse(writer, refusal, method).await
}

/// Writes one method on channel 0 straight to the socket (the writer task starts after the
/// handshake).
async fn send_method(writer: &mut WriteHalf, method: &Method) -> std::io::Result<()> {
    let mut out = Vec::new();
    write_method_frame(&mut out, 0, method);
    writer.write_all(&out).await
}

/// Closes the connection during the handshake with the refusal's code and text, naming the
/// method that failed.
async fn refuse<T>(
    writer: &mut WriteHalf,
    refusal: Refusal,
    method: &Method,
) -> Result<T, HandshakeError> {
    let code = refusal.reply_code();
    send_method(
        writer,
        &Method::ConnectionClose(ConnectionClose {
            reply_code: code.code(),
            reply_text: ShortStr::from_str_truncated(&format!("{} - {refusal}", code.name())),
            class_id: method.class_id(),
            method_id: method.method_id(),
        }),
    )
    .await?;
    let _ = writer.flush().await;
    glommio::timer::sleep(Duration::from_millis(100)).await;
    Err(HandshakeError::Refused(refusal))
}

fn client_capabilities(properties: &FieldTable) -> ClientCapabilities {
    let Some(FieldValue::Table(capabilities)) = properties.get("capabilities") else {
        return ClientCapabilities::default();
    };
    let flag = |name: &str| {
        capabilities
            .get(name)
            .and_then(FieldValue::as_bool)
            .unwrap_or(false)
    };
    ClientCapabilities {
        consumer_cancel_notify: flag("consumer_cancel_notify"),
        connection_blocked: flag("connection.blocked"),
        authentication_failure_close: flag("authentication_failure_close"),
    }
}

/// PLAIN: `authzid \0 user \0 password` (authzid ignored).
fn parse_plain(response: &[u8]) -> Option<Credentials> {
    let mut parts = response.split(|b| *b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some(Credentials {
        user: Bytes::copy_from_slice(user),
        password: Some(Bytes::copy_from_slice(password)),
    })
}

/// AMQPLAIN: a field table of LOGIN and PASSWORD, sent by py-amqp/kombu *without* the table's
/// 4-byte length prefix; we accept both forms.
fn parse_amqplain(response: &Bytes) -> Option<Credentials> {
    let table = FieldTable::decode_entries(response)
        .or_else(|_| FieldTable::decode(response))
        .ok()?;
    let text = |key: &str| match table.get(key) {
        Some(FieldValue::LongStr(bytes)) => Some(bytes.clone()),
        _ => None,
    };
    Some(Credentials {
        user: text("LOGIN")?,
        password: Some(text("PASSWORD")?),
    })
}

/// Checks the credentials against the users of this shard's metadata copy. `guest` may log
/// in only from a loopback address unless the configuration allows it (RabbitMQ's
/// `loopback_users`).
fn authenticate(
    shard: &Shard,
    credentials: &Credentials,
    mechanism: &ShortStr,
    peer: SocketAddr,
) -> Result<(), Refusal> {
    let user = std::str::from_utf8(&credentials.user).unwrap_or_default();
    let registry = shard.registry.borrow();
    let access = registry.access();
    let known = match &credentials.password {
        Some(password) => access.authenticate(user, password).is_some(),
        // EXTERNAL: the certificate was verified; the user must exist.
        None => !user.is_empty() && access.users.contains_key(user),
    };
    drop(registry);
    if !known {
        return Err(Refusal::LoginRefused {
            mechanism: mechanism.clone(),
            user: credentials.user.clone(),
        });
    }
    if user == "guest" && shard.config.guest_loopback_only && !peer.ip().is_loopback() {
        return Err(Refusal::LoopbackOnly {
            user: credentials.user.clone(),
        });
    }
    Ok(())
}

/// connection.open: the vhost exists and the user has a permission in it.
fn check_vhost_access(shard: &Shard, vhost: &ShortStr, user: &ShortStr) -> Result<(), Refusal> {
    let registry = shard.registry.borrow();
    if registry.vhost(vhost).is_none() {
        return Err(Refusal::VhostNotFound {
            vhost: vhost.clone(),
        });
    }
    let permitted = registry
        .access()
        .permission(&user.to_string_lossy(), &vhost.to_string_lossy())
        .is_some();
    if !permitted {
        return Err(Refusal::VhostAccessRefused {
            vhost: vhost.clone(),
            user: user.clone(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_splits_on_nul() {
        let credentials = parse_plain(b"\0guest\0secret").expect("valid PLAIN");
        assert_eq!(credentials.user.as_ref(), b"guest");
        assert_eq!(credentials.password.as_deref(), Some(&b"secret"[..]));
        assert!(parse_plain(b"guest").is_none());
    }
}
