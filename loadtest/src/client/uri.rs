//! `AmqpUri`: the parts of `amqp://user:pass@host:port/vhost` (or `amqps://`, TLS) hareperf
//! needs. An `amqps://` URI also needs a TLS client configuration (`--tls-ca` or
//! `--insecure`), set in `tls` after parsing. The vhost is percent-decoded, so `/%2f` and the
//! empty path both mean `/`, as in RabbitMQ's URI spec.

use super::error::ClientError;

/// Default AMQP port when the URI names none.
pub const AMQP_PORT_DEFAULT: u16 = 5672;
/// Default AMQPS port when an `amqps://` URI names none.
pub const AMQPS_PORT_DEFAULT: u16 = 5671;

/// A parsed `amqp://` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpUri {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// `amqps://`: connect with TLS.
    pub secure: bool,
    /// The TLS client configuration an `amqps://` URI connects with.
    pub tls: Option<super::tls::TlsClient>,
}

impl AmqpUri {
    pub fn parse(uri: &str) -> Result<AmqpUri, ClientError> {
        let bad = |reason| ClientError::Uri {
            uri: uri.to_string(),
            reason,
        };
        let (rest, secure) = match uri.strip_prefix("amqps://") {
            Some(rest) => (rest, true),
            None => (
                uri.strip_prefix("amqp://")
                    .ok_or_else(|| bad("only amqp:// and amqps:// URIs are supported"))?,
                false,
            ),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (user, password) = match credentials {
            Some(credentials) => {
                let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
                (
                    percent_decode(user).ok_or_else(|| bad("bad percent escape in user"))?,
                    percent_decode(password)
                        .ok_or_else(|| bad("bad percent escape in password"))?,
                )
            }
            None => ("guest".to_string(), "guest".to_string()),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("port is not a number"))?,
            ),
            None if secure => (host_port, AMQPS_PORT_DEFAULT),
            None => (host_port, AMQP_PORT_DEFAULT),
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let vhost = match path {
            None | Some("") => "/".to_string(),
            Some(path) => percent_decode(path).ok_or_else(|| bad("bad percent escape in vhost"))?,
        };
        Ok(AmqpUri {
            host: host.to_string(),
            port,
            user,
            password,
            vhost,
            secure,
            tls: None,
        })
    }

    /// `host:port`, for `TcpStream::connect`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_uri_and_decodes_the_vhost() {
        let uri = AmqpUri::parse("amqp://u%40x:p%3As@127.0.0.1:5690/%2f").unwrap();
        assert_eq!(uri.user, "u@x");
        assert_eq!(uri.password, "p:s");
        assert_eq!(uri.address(), "127.0.0.1:5690");
        assert_eq!(uri.vhost, "/");
    }

    #[test]
    fn defaults_port_credentials_and_vhost() {
        let uri = AmqpUri::parse("amqp://localhost").unwrap();
        assert_eq!(uri.port, AMQP_PORT_DEFAULT);
        assert_eq!(uri.user, "guest");
        assert_eq!(uri.vhost, "/");
        assert_eq!(AmqpUri::parse("amqp://h/").unwrap().vhost, "/");
        assert_eq!(AmqpUri::parse("amqp://h/prod").unwrap().vhost, "prod");
    }

    #[test]
    fn refuses_other_schemes_and_bad_ports() {
        assert!(AmqpUri::parse("amqp://h:port").is_err());
        assert!(AmqpUri::parse("http://h/").is_err());
        assert!(AmqpUri::parse("amqp://h/%zz").is_err());
    }

    #[test]
    fn amqps_is_tls_on_5671_unless_a_port_is_given() {
        let uri = AmqpUri::parse("amqps://u:p@broker/%2f").unwrap();
        assert!(uri.secure);
        assert_eq!(uri.port, AMQPS_PORT_DEFAULT);
        assert_eq!(uri.tls, None);
        assert_eq!(AmqpUri::parse("amqps://h:5999").unwrap().port, 5999);
        assert!(!AmqpUri::parse("amqp://h").unwrap().secure);
    }
}
