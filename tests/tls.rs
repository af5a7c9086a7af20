//! TLS (docs/operations.md, TLS): AMQPS with amqprs and a bare rustls client, certificate
//! checks on the client side (wrong CA, expired certificate), a plaintext client on the TLS
//! port, start-up errors for bad files, EXTERNAL login with client certificates, HTTPS for
//! the management API and the metrics endpoint, and certificate reload.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::channel::{BasicGetArguments, BasicPublishArguments, QueueDeclareArguments};
use amqprs::connection::{Connection, OpenConnectionArguments};
use amqprs::security::SecurityCredentials;
use amqprs::tls::TlsAdaptor;
use amqprs::BasicProperties;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{CertificateError, ClientConfig};
use tokio_rustls::TlsConnector;

use common::pki::{self, Authority, Issued};
use common::Broker;
use hare::protocol::{parse_frame, Method, PROTOCOL_HEADER};

/// A CA, its server certificate in `dir`, and the broker flags that use them.
struct Setup {
    dir: PathBuf,
    ca: Authority,
    server: Issued,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = pki::fresh_dir(name);
        let ca = Authority::new("Hare test CA");
        let server = ca.server("hare-server", false);
        server.write(&dir, "server");
        std::fs::write(dir.join("ca.pem"), &ca.pem).expect("write CA");
        Setup { dir, ca, server }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `--tls-listen` on port 0 with the server certificate, plus `extra`.
    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-cert",
            &self.path("server.pem"),
            "--tls-key",
            &self.path("server.key"),
        ]
        .iter()
        .map(|arg| (*arg).to_owned())
        .collect();
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    }

    fn start(&self, extra: &[&str]) -> Broker {
        let args = self.args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Broker::start_with(1, &args)
    }
}

fn tls_addr(broker: &Broker) -> SocketAddr {
    broker.tls.expect("hare printed its AMQPS address")
}

/// amqprs over TLS with `config`, logging in with `credentials`.
async fn open(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    credentials: SecurityCredentials,
) -> Result<Connection, amqprs::error::Error> {
    let adaptor = TlsAdaptor::new(TlsConnector::from(config), "localhost".to_owned());
    let mut args = OpenConnectionArguments::new(&addr.ip().to_string(), addr.port(), "", "");
    args.credentials(credentials).tls_adaptor(adaptor);
    Connection::open(&args).await
}

fn guest() -> SecurityCredentials {
    SecurityCredentials::new_plain("guest", "guest")
}

/// Publishes one message to a fresh queue and gets it back.
async fn round_trip(connection: &Connection, queue: &str, body: &[u8]) {
    let channel = connection.open_channel(None).await.expect("channel");
    channel
        .queue_declare(QueueDeclareArguments::new(queue))
        .await
        .expect("declare");
    channel
        .basic_publish(
            BasicProperties::default(),
            body.to_vec(),
            BasicPublishArguments::new("", queue),
        )
        .await
        .expect("publish");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some((_, _, got)) = channel
            .basic_get(BasicGetArguments::new(queue).no_ack(true).finish())
            .await
            .expect("get")
        {
            assert_eq!(got, body);
            break;
        }
        assert!(Instant::now() < deadline, "the message did not arrive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    channel.close().await.expect("close channel");
}

/// A bare TLS handshake with `config`: the server's certificate, or why the client refused.
async fn handshake(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// The rustls certificate error inside a failed handshake's I/O error.
fn certificate_error(error: &std::io::Error) -> Option<CertificateError> {
    let inner = error
        .get_ref()?
        .downcast_ref::<tokio_rustls::rustls::Error>()?;
    match inner {
        tokio_rustls::rustls::Error::InvalidCertificate(error) => Some(error.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_and_get_over_tls_beside_the_plain_listener() {
    let setup = Setup::new("tls-round-trip");
    let broker = setup.start(&[]);
    let connection = open(
        tls_addr(&broker),
        pki::client_config(&setup.ca.pem, None),
        guest(),
    )
    .await
    .expect("open over TLS");
    round_trip(&connection, "over-tls", b"secret payload").await;
    // A body larger than one TLS record (16 KiB) crosses several.
    round_trip(&connection, "over-tls-large", &vec![7u8; 300_000]).await;
    connection.close().await.expect("close");

    let mut args = OpenConnectionArguments::new("127.0.0.1", broker.port(), "guest", "guest");
    args.virtual_host("/");
    let plain = Connection::open(&args).await.expect("open plain");
    round_trip(&plain, "plain", b"plain payload").await;
    plain.close().await.expect("close plain");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_another_ca_refuses_the_broker() {
    let setup = Setup::new("tls-wrong-ca");
    let broker = setup.start(&[]);
    let other = Authority::new("Another CA");
    let error = handshake(tls_addr(&broker), pki::client_config(&other.pem, None))
        .await
        .expect_err("a certificate from an unknown CA must be refused");
    assert_eq!(
        certificate_error(&error),
        Some(CertificateError::UnknownIssuer),
        "{error}"
    );
    // The broker serves the next client with the right CA.
    let stream = handshake(tls_addr(&broker), pki::client_config(&setup.ca.pem, None)).await;
    assert!(stream.is_ok(), "{:?}", stream.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused_by_the_client() {
    let setup = Setup::new("tls-expired");
    setup
        .ca
        .server("hare-server", true)
        .write(&setup.dir, "server");
    let broker = setup.start(&[]);
    let error = handshake(tls_addr(&broker), pki::client_config(&setup.ca.pem, None))
        .await
        .expect_err("an expired certificate must be refused");
    assert!(
        matches!(
            certificate_error(&error),
            Some(CertificateError::Expired | CertificateError::ExpiredContext { .. })
        ),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_on_the_tls_port_is_closed_promptly() {
    let setup = Setup::new("tls-plaintext");
    let broker = setup.start(&[]);
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(tls_addr(&broker))
        .await
        .expect("connect");
    tcp.write_all(b"AMQP\x00\x00\x09\x01")
        .await
        .expect("send the AMQP header");
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the socket stayed open for 5 s");
    // At most a TLS alert record (content type 21), never an AMQP frame.
    assert!(
        received.first().is_none_or(|byte| *byte == 21),
        "{received:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Others are still served, over TLS and plain.
    let connection = open(
        tls_addr(&broker),
        pki::client_config(&setup.ca.pem, None),
        guest(),
    )
    .await
    .expect("open over TLS after the plaintext client");
    round_trip(&connection, "after-plaintext", b"still here").await;
    connection.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_on_the_tls_port_is_closed_at_the_handshake_timeout() {
    let setup = Setup::new("tls-silent");
    let broker = setup.start(&["--handshake-timeout-ms", "500"]);
    let mut tcp = tokio::net::TcpStream::connect(tls_addr(&broker))
        .await
        .expect("connect");
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    assert!(
        read.is_ok(),
        "the socket stayed open past the handshake timeout"
    );
}

fn start_failure(args: &[String]) -> (std::process::ExitStatus, String) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data_dir = common::fresh_data_dir();
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let result = Broker::start_failure_with(&data_dir, 1, &args);
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

#[test]
fn bad_certificate_files_stop_the_start_naming_the_file() {
    let setup = Setup::new("tls-bad-files");
    let missing = setup.path("missing.pem");
    let mut args = setup.args(&[]);
    args[3] = missing.clone();
    let (status, stderr) = start_failure(&args);
    assert!(!status.success());
    assert!(stderr.contains(&missing), "{stderr}");

    let garbage = setup.dir.join("garbage.key");
    std::fs::write(&garbage, "not a key\n").expect("write");
    let mut args = setup.args(&[]);
    args[5] = garbage.display().to_string();
    let (status, stderr) = start_failure(&args);
    assert!(!status.success());
    assert!(stderr.contains("garbage.key"), "{stderr}");

    // A key that belongs to another certificate.
    setup.ca.client("someone").write(&setup.dir, "other");
    let mut args = setup.args(&[]);
    args[5] = setup.path("other.key");
    let (status, stderr) = start_failure(&args);
    assert!(!status.success());
    assert!(stderr.contains("other.key"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_tls_listener_without_a_certificate_is_refused() {
    let (status, stderr) = start_failure(&["--tls-listen".into(), "127.0.0.1:0".into()]);
    assert!(!status.success());
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}

/// A raw AMQP exchange over TLS, for what amqprs does not show: the mechanisms offered and
/// the exact refusal.
struct RawTls {
    stream: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    buffer: bytes::BytesMut,
}

impl RawTls {
    /// Handshakes, sends the protocol header and returns connection.start's mechanisms.
    async fn start(addr: SocketAddr, config: Arc<ClientConfig>) -> (RawTls, String) {
        let mut stream = handshake(addr, config).await.expect("TLS handshake");
        stream.write_all(&PROTOCOL_HEADER).await.expect("header");
        let mut client = RawTls {
            stream,
            buffer: bytes::BytesMut::new(),
        };
        match client.next_method().await {
            Method::ConnectionStart(start) => {
                let mechanisms = String::from_utf8_lossy(start.mechanisms.as_bytes()).into_owned();
                (client, mechanisms)
            }
            other => panic!("expected connection.start, got {other:?}"),
        }
    }

    async fn send(&mut self, method: impl Into<Method>) {
        let frame = common::raw::method_frame(0, &method.into());
        self.stream.write_all(&frame).await.expect("send");
    }

    async fn next_method(&mut self) -> Method {
        loop {
            if let Some(frame) = parse_frame(&mut self.buffer, 0).expect("well-formed frame") {
                return Method::decode(&frame.payload).expect("decodable method");
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut chunk))
                .await
                .expect("a frame in time")
                .expect("read");
            assert!(read > 0, "closed before a frame arrived");
            self.buffer.extend_from_slice(&chunk[..read]);
        }
    }
}

/// Logs in with EXTERNAL over a raw TLS connection and returns the broker's refusal.
async fn external_refusal(addr: SocketAddr, config: Arc<ClientConfig>) -> (u16, String) {
    let (mut client, _) = RawTls::start(addr, config).await;
    client
        .send(common::raw::start_ok("EXTERNAL", b"", true))
        .await;
    match client.next_method().await {
        Method::ConnectionClose(close) => (close.reply_code, close.reply_text.to_string_lossy()),
        other => panic!("expected connection.close, got {other:?}"),
    }
}

/// The management API's entry for `user`'s connection, once it is listed.
async fn listed_connection(broker: &Broker, user: &str) -> serde_json::Value {
    let guest = common::http::basic("guest", "guest");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listed = common::http::exchange(
            broker.management,
            "GET",
            "/api/connections",
            &[("authorization", guest.as_str())],
            b"",
        )
        .json();
        let found = listed
            .as_array()
            .and_then(|all| all.iter().find(|item| item["user"] == user).cloned());
        if let Some(found) = found {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{user}'s connection is not listed: {listed}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verify_peer_args(setup: &Setup) -> Vec<String> {
    vec![
        "--tls-ca".into(),
        setup.path("ca.pem"),
        "--tls-verify-peer".into(),
    ]
}

/// Creates user `name` with full permissions on `/` through the management API.
fn add_user(broker: &Broker, name: &str) {
    let guest = common::http::basic("guest", "guest");
    let headers = [
        ("authorization", guest.as_str()),
        ("content-type", "application/json"),
    ];
    let created = common::http::exchange(
        broker.management,
        "PUT",
        &format!("/api/users/{name}"),
        &headers,
        br#"{"password":"unused-password","tags":""}"#,
    );
    assert!(created.status < 300, "{}", created.status);
    let permitted = common::http::exchange(
        broker.management,
        "PUT",
        &format!("/api/permissions/%2F/{name}"),
        &headers,
        br#"{"configure":".*","write":".*","read":".*"}"#,
    );
    assert!(permitted.status < 300, "{}", permitted.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_logs_in_the_certificate_common_name() {
    let setup = Setup::new("tls-external");
    let extra = verify_peer_args(&setup);
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let broker = setup.start(&extra);
    add_user(&broker, "alice");
    let alice = setup.ca.client("alice");
    let with_cert = pki::client_config(&setup.ca.pem, Some(&alice));
    let without_cert = pki::client_config(&setup.ca.pem, None);
    let (_, offered) = RawTls::start(tls_addr(&broker), with_cert.clone()).await;
    assert_eq!(offered, "EXTERNAL PLAIN AMQPLAIN");
    let (_, offered) = RawTls::start(tls_addr(&broker), without_cert.clone()).await;
    assert_eq!(offered, "PLAIN AMQPLAIN");

    let connection = open(
        tls_addr(&broker),
        with_cert,
        SecurityCredentials::new_external(),
    )
    .await
    .expect("EXTERNAL login as alice");
    round_trip(&connection, "external", b"by certificate").await;
    // The management API shows the session and the mechanism, in RabbitMQ's words.
    let listed = listed_connection(&broker, "alice").await;
    assert_eq!(listed["ssl"], true, "{listed}");
    assert_eq!(listed["ssl_protocol"], "tlsv1.3", "{listed}");
    assert_eq!(listed["auth_mechanism"], "EXTERNAL", "{listed}");
    assert!(
        listed["ssl_cipher"]
            .as_str()
            .is_some_and(|cipher| cipher != "unknown"),
        "{listed}"
    );
    connection.close().await.expect("close");

    let mallory = pki::client_config(&setup.ca.pem, Some(&setup.ca.client("mallory")));
    let refused = external_refusal(tls_addr(&broker), mallory).await;
    assert_eq!(
        refused,
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile. (user 'mallory')".to_owned()
        )
    );
    // Without a certificate EXTERNAL was not offered: a mechanism this connection does not know.
    let refused = external_refusal(tls_addr(&broker), without_cert.clone()).await;
    assert_eq!(
        refused,
        (
            503,
            "COMMAND_INVALID - unknown authentication mechanism 'EXTERNAL'".to_owned()
        )
    );
    // amqprs itself will not try EXTERNAL where it is not offered.
    let refused = open(
        tls_addr(&broker),
        without_cert.clone(),
        SecurityCredentials::new_external(),
    )
    .await;
    assert!(refused.is_err(), "EXTERNAL without a certificate logged in");
    // PLAIN still works on the same listener without a certificate.
    let plain = open(tls_addr(&broker), without_cert, guest())
        .await
        .expect("PLAIN over TLS");
    plain.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_or_none_is_refused_when_required() {
    let setup = Setup::new("tls-fail-if-no-cert");
    let mut extra = verify_peer_args(&setup);
    extra.push("--tls-fail-if-no-peer-cert".into());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let broker = setup.start(&extra);
    let no_cert = pki::client_config(&setup.ca.pem, None);
    assert!(open(tls_addr(&broker), no_cert, guest()).await.is_err());
    let stranger = Authority::new("Another CA").client("alice");
    let foreign = pki::client_config(&setup.ca.pem, Some(&stranger));
    assert!(open(tls_addr(&broker), foreign, guest()).await.is_err());
    let own = pki::client_config(&setup.ca.pem, Some(&setup.ca.client("guest")));
    let connection = open(tls_addr(&broker), own, guest())
        .await
        .expect("with a certificate");
    connection.close().await.expect("close");
}

/// One HTTPS GET with basic auth as guest: the status line and the body.
async fn https_get(addr: SocketAddr, config: Arc<ClientConfig>, path: &str) -> (String, String) {
    let mut stream = handshake(addr, config).await.expect("HTTPS handshake");
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\nconnection: close\r\n\r\n",
        common::http::basic("guest", "guest")
    );
    stream.write_all(request.as_bytes()).await.expect("request");
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .expect("response in time");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_and_metrics_over_https() {
    let setup = Setup::new("tls-https");
    let broker = setup.start(&["--management-tls", "--metrics-tls"]);
    let config = pki::client_config(&setup.ca.pem, None);
    let (status, body) = https_get(broker.management, config.clone(), "/api/overview").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("\"node\""), "{body}");
    assert!(body.contains("\"amqp/ssl\""), "{body}");
    let tls_port = tls_addr(&broker).port();
    for check in [
        format!("/api/health/checks/port-listener/{tls_port}"),
        "/api/health/checks/protocol-listener/amqps,https,https%2Fprometheus".to_owned(),
    ] {
        let (status, body) = https_get(broker.management, config.clone(), &check).await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{check}: {body}");
    }
    let (status, _) = https_get(
        broker.management,
        config.clone(),
        "/api/health/checks/protocol-listener/http",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    let (status, body) = https_get(broker.metrics, config, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("rabbitmq_"), "{body}");
    // Plain HTTP on the HTTPS port gets no answer, and the port keeps serving.
    let mut tcp = tokio::net::TcpStream::connect(broker.management)
        .await
        .expect("connect");
    tcp.write_all(b"GET /api/overview HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("send");
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "plain HTTP on the HTTPS port hung");
    assert!(!String::from_utf8_lossy(&received).contains("HTTP/1.1"));
}

/// The server certificate a fresh TLS connection sees.
async fn served_certificate(addr: SocketAddr, config: Arc<ClientConfig>) -> Vec<u8> {
    let stream = handshake(addr, config).await.expect("handshake");
    let (_, session) = stream.get_ref();
    session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a server certificate")
        .to_vec()
}

/// Waits until new connections see `expected`.
async fn wait_for_certificate(addr: SocketAddr, config: &Arc<ClientConfig>, expected: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_certificate(addr, config.clone()).await != expected {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_used_for_new_connections_without_a_restart() {
    let setup = Setup::new("tls-reload");
    let args = setup.args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data_dir = common::fresh_data_dir();
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let log = setup.dir.join("broker.log");
    let broker = Broker::start_on_logged(&data_dir, 1, common::Listen::ANY, &args, &log);
    let addr = tls_addr(&broker);
    let config = pki::client_config(&setup.ca.pem, None);
    assert_eq!(
        served_certificate(addr, config.clone()).await,
        setup.server.der
    );
    let open_before = open(addr, config.clone(), guest()).await.expect("open");

    let renewed = setup.ca.server("hare-server-renewed", false);
    renewed.write(&setup.dir, "server");
    wait_for_certificate(addr, &config, &renewed.der).await;
    // The connection opened before the reload keeps working on its session.
    round_trip(&open_before, "across-reload", b"old session").await;

    // A broken file keeps the last good certificate, and says so in the log.
    pki::write_atomically(
        &setup.dir.join("server.pem"),
        "-----BEGIN CERTIFICATE-----\nbroken\n",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log_text(&log).contains("previous certificate stays in use") {
        assert!(
            Instant::now() < deadline,
            "no error logged: {}",
            log_text(&log)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served_certificate(addr, config.clone()).await, renewed.der);
    let connection = open(addr, config, guest())
        .await
        .expect("open after a broken file");
    round_trip(&connection, "after-broken", b"still served").await;
    connection.close().await.expect("close");
    open_before.close().await.expect("close");
}

#[test]
fn hareperf_runs_over_amqps_with_confirms_and_loses_nothing() {
    let setup = Setup::new("tls-hareperf");
    let broker = setup.start(&[]);
    let uri = format!(
        "amqps://guest:guest@localhost:{}/%2f",
        tls_addr(&broker).port()
    );
    let ca = setup.path("ca.pem");
    let args = hare_loadtest::cli::RunArgs::parse_from([
        "throughput",
        "-x",
        "2",
        "-y",
        "2",
        "-C",
        "3000",
        "-c",
        "100",
        "-s",
        "2000",
        "--uri",
        &uri,
        "--tls-ca",
        &ca,
        "--quiet",
        "--drain-timeout",
        "5",
    ])
    .expect("valid hareperf arguments");
    let report = hare_loadtest::scenario::run(args).expect("hareperf reaches the broker over TLS");
    assert!(report.errors.is_empty(), "errors: {:?}", report.errors);
    let results = &report.results;
    assert_eq!(results.published, 6000);
    assert_eq!(results.confirmed, 6000);
    assert_eq!(results.accepted, 6000);
    assert_eq!(results.verification.lost, 0);
    assert_eq!(results.verification.duplicates, 0);

    // A CA that did not sign the broker's certificate: no connection.
    let other = Authority::new("Another CA");
    std::fs::write(setup.dir.join("other-ca.pem"), &other.pem).expect("write");
    let other_ca = setup.path("other-ca.pem");
    let args = hare_loadtest::cli::RunArgs::parse_from([
        "throughput",
        "-C",
        "10",
        "--uri",
        &uri,
        "--tls-ca",
        &other_ca,
        "--quiet",
    ])
    .expect("valid hareperf arguments");
    assert!(hare_loadtest::scenario::run(args).is_err());
}
