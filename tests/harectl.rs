//! Black-box tests of the `harectl` binary against a real management API: its output bytes,
//! its exit codes and what it changes on the broker (docs/harectl.md).
//!
//! The target is `HARECTL_TEST_URL` when set (for example RabbitMQ's `http://127.0.0.1:15672`
//! with guest/guest), otherwise a Hare broker started by the harness in `tests/common`. Every
//! test works in a vhost of its own, named after the process and a counter and deleted at the
//! end, so tests run in parallel and next to other users of a shared broker.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

static NEXT_NAME: AtomicU64 = AtomicU64::new(0);

/// The API under test; keeps the Hare broker (if one was started) alive.
struct Target {
    url: String,
    _broker: Option<common::Broker>,
}

fn target() -> Target {
    if let Ok(url) = std::env::var("HARECTL_TEST_URL") {
        return Target { url, _broker: None };
    }
    let broker = common::Broker::start(1);
    Target {
        url: hare_management_url(&broker),
        _broker: Some(broker),
    }
}

/// The management API of a Hare broker from the harness, which reads it from the binary's
/// `hare management API on http://ADDR` line.
fn hare_management_url(broker: &common::Broker) -> String {
    format!("http://{}", broker.management)
}

/// A name no other test (or test process) uses.
fn unique(prefix: &str) -> String {
    format!(
        "harectl-{prefix}-{}-{}",
        std::process::id(),
        NEXT_NAME.fetch_add(1, Ordering::Relaxed)
    )
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Target {
    fn harectl(&self, args: &[&str]) -> Run {
        self.harectl_with_stdin(args, None)
    }

    fn harectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_harectl"));
        command
            .arg("--url")
            .arg(&self.url)
            .args(args)
            .env_remove("HARECTL_URL")
            .env_remove("HARECTL_USERNAME")
            .env_remove("HARECTL_PASSWORD");
        let output = match stdin {
            None => command.output().expect("run harectl"),
            Some(text) => {
                use std::io::Write;
                command
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut child = command.spawn().expect("spawn harectl");
                child
                    .stdin
                    .take()
                    .expect("piped stdin")
                    .write_all(text.as_bytes())
                    .expect("write stdin");
                child.wait_with_output().expect("wait for harectl")
            }
        };
        run_of(output)
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.harectl(args);
        assert_eq!(
            run.code, 0,
            "harectl {args:?} failed: {}{}",
            run.stdout, run.stderr
        );
        run.stdout
    }

    /// A fresh vhost, deleted when the guard drops.
    fn vhost(&self) -> VhostGuard<'_> {
        let name = unique("vh");
        self.ok(&["add_vhost", &name]);
        self.ok(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        VhostGuard { target: self, name }
    }

    /// Declares `queue` in `vhost` with `arguments` through a definitions import.
    fn declare_queue(&self, vhost: &str, queue: &str, arguments: Value) {
        let definitions = json!({"queues": [{"name": queue, "vhost": vhost, "durable": true,
            "auto_delete": false, "arguments": arguments}]});
        self.import(&definitions);
    }

    fn import(&self, definitions: &Value) {
        let run = self.harectl_with_stdin(&["import_definitions"], Some(&definitions.to_string()));
        assert_eq!(run.code, 0, "import failed: {}", run.stderr);
    }

    /// Publishes through the API's default exchange.
    fn publish(&self, vhost: &str, queue: &str, count: usize) {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        let url = format!(
            "{}/api/exchanges/{}/amq.default/publish",
            self.url,
            percent_encoding::utf8_percent_encode(vhost, percent_encoding::NON_ALPHANUMERIC)
        );
        let body = json!({"properties": {}, "routing_key": queue, "payload": "body",
            "payload_encoding": "string"});
        for _ in 0..count {
            let response = agent
                .post(&url)
                .header("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
                .content_type("application/json")
                .send(body.to_string())
                .expect("publish over HTTP");
            assert_eq!(response.status().as_u16(), 200, "publish refused");
        }
    }
}

struct VhostGuard<'a> {
    target: &'a Target,
    name: String,
}

impl Drop for VhostGuard<'_> {
    fn drop(&mut self) {
        let _ = self.target.harectl(&["delete_vhost", &self.name]);
    }
}

fn run_of(output: Output) -> Run {
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Polls `check` until it returns true; the management API's counters lag behind (RabbitMQ
/// samples every 5 s).
fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn list_queues_prints_rabbitmqctl_banners_headers_and_tab_separated_rows() {
    let target = target();
    let vhost = target.vhost();
    let vh = vhost.name.as_str();
    target.declare_queue(vh, "q1", json!({"x-max-length": 10}));
    target.publish(vh, "q1", 2);

    eventually(Duration::from_secs(20), || {
        target.ok(&["-q", "list_queues", "-p", vh]) == "name\tmessages\nq1\t2\n"
    });
    let full = target.ok(&["list_queues", "-p", vh]);
    assert_eq!(
        full,
        format!(
            "Timeout: 60.0 seconds ...\nListing queues for vhost {vh} ...\nname\tmessages\nq1\t2\n"
        )
    );
    assert_eq!(
        target.ok(&[
            "-s",
            "list_queues",
            "-p",
            vh,
            "name",
            "durable",
            "arguments"
        ]),
        "q1\ttrue\t[{\"x-max-length\",10}]\n"
    );
    assert_eq!(
        target.ok(&["list_queues", "-p", vh, "--no-table-headers", "-q", "name"]),
        "q1\n"
    );
    let unknown = target.harectl(&["list_queues", "-p", vh, "colour"]);
    assert_eq!(unknown.code, 64);
    assert!(unknown.stderr.contains("colour"), "{}", unknown.stderr);
}

#[test]
fn the_json_formatter_prints_typed_objects_in_column_order_without_banner() {
    let target = target();
    let vhost = target.vhost();
    let vh = vhost.name.as_str();
    target.declare_queue(vh, "q1", json!({"x-max-length": 10}));
    let out = target.ok(&[
        "--formatter",
        "json",
        "list_queues",
        "-p",
        vh,
        "name",
        "durable",
        "arguments",
    ]);
    assert!(
        out.starts_with("[\n{\"name\":\"q1\",\"durable\":true,"),
        "{out}"
    );
    let rows: Value = serde_json::from_str(&out).expect("JSON output");
    assert_eq!(
        rows,
        json!([{"name": "q1", "durable": true, "arguments": [["x-max-length", "long", 10]]}])
    );
    let users: Value =
        serde_json::from_str(&target.ok(&["--formatter", "json", "list_users"])).expect("JSON");
    assert!(users
        .as_array()
        .expect("array")
        .iter()
        .any(|user| user["user"] == "guest" && user["tags"].is_array()));
}

#[test]
fn users_are_added_listed_and_deleted_with_rabbitmqctl_exit_codes() {
    let target = target();
    let user = unique("user");
    let added = target.ok(&["add_user", &user, "secret"]);
    assert!(
        added.starts_with(&format!("Adding user \"{user}\" ...\n")),
        "{added}"
    );
    assert!(target
        .ok(&["-q", "list_users"])
        .contains(&format!("\n{user}\t[]\n")));

    let again = target.harectl(&["add_user", &user, "secret"]);
    assert_eq!(again.code, 70);
    assert!(again
        .stderr
        .contains(&format!("User \"{user}\" already exists")));

    target.ok(&["set_user_tags", &user, "monitoring", "management"]);
    assert!(target
        .ok(&["-q", "list_users"])
        .contains(&format!("\n{user}\t[monitoring, management]\n")));
    assert_eq!(
        target.harectl(&["authenticate_user", &user, "secret"]).code,
        0
    );
    assert_eq!(
        target.harectl(&["authenticate_user", &user, "wrong"]).code,
        65
    );
    let changed = target.harectl_with_stdin(&["change_password", &user], Some("other\n"));
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    assert_eq!(
        target.harectl(&["authenticate_user", &user, "other"]).code,
        0
    );

    target.ok(&["delete_user", &user]);
    let missing = target.harectl(&["delete_user", &user]);
    assert_eq!(missing.code, 67);
    assert_eq!(
        missing.stderr,
        format!("Error:\nUser \"{user}\" does not exist\n")
    );
    assert_eq!(target.harectl(&["change_password", &user, "x"]).code, 67);
}

#[test]
fn user_limits_are_set_merged_listed_and_cleared() {
    let target = target();
    let user = unique("limited");
    target.ok(&["add_user", &user, "pw"]);
    let definition = r#"{"max-connections": 2}"#;
    assert_eq!(
        target.ok(&["set_user_limits", &user, definition]),
        format!("Setting user limits to \"{definition}\" for user \"{user}\" ...\n")
    );
    // Limits not named are kept.
    target.ok(&["set_user_limits", &user, r#"{"max-channels": 20}"#]);
    assert_eq!(
        target.ok(&["list_user_limits", "--user", &user]),
        format!(
            "Listing limits for user \"{user}\" ...\n{{\"max-channels\":20,\"max-connections\":2}}\n"
        )
    );
    let global = target.ok(&["list_user_limits", "--global"]);
    assert!(
        global.starts_with("Listing limits for all users ...\nuser\tlimits\n"),
        "{global}"
    );
    assert!(
        global.contains(&format!(
            "\n{user}\t{{\"max-channels\":20,\"max-connections\":2}}\n"
        )),
        "{global}"
    );

    assert_eq!(
        target.ok(&["clear_user_limits", &user, "max-channels"]),
        format!("Clearing \"max-channels\" limit for user \"{user}\" ...\n")
    );
    assert_eq!(
        target.ok(&["-q", "list_user_limits", "--user", &user]),
        "{\"max-connections\":2}\n"
    );
    assert_eq!(
        target.ok(&["clear_user_limits", &user, "all"]),
        format!("Clearing all limits for user \"{user}\" ...\n")
    );
    assert_eq!(
        target.ok(&["-q", "list_user_limits", "--user", &user]),
        "{}\n"
    );

    let unknown = target.harectl(&["set_user_limits", &user, r#"{"max-queues": 1}"#]);
    assert_eq!(unknown.code, 65, "{}", unknown.stderr);
    assert!(
        unknown.stderr.contains("Unrecognised terms"),
        "{}",
        unknown.stderr
    );
    let missing = unique("nobody");
    // clear_user_limits is left out: RabbitMQ's API answers a DELETE for a user that does not
    // exist with a 500 (Hare's with a 404, exit 67).
    for args in [
        vec![
            "set_user_limits",
            missing.as_str(),
            r#"{"max-channels": 1}"#,
        ],
        vec!["list_user_limits", "--user", missing.as_str()],
    ] {
        let run = target.harectl(&args);
        assert_eq!(run.code, 67, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr
                .contains(&format!("User \"{missing}\" does not exist")),
            "{}",
            run.stderr
        );
    }
    target.ok(&["delete_user", &user]);
}

#[test]
fn vhosts_are_added_with_metadata_and_deleted() {
    let target = target();
    let name = unique("vhost");
    target.ok(&[
        "add_vhost",
        &name,
        "--description",
        "for tests",
        "--tags",
        "a,b",
    ]);
    target.ok(&["add_vhost", &name]);
    let listed = target.ok(&[
        "-q",
        "list_vhosts",
        "name",
        "description",
        "tags",
        "tracing",
    ]);
    assert!(
        listed.contains(&format!("\n{name}\tfor tests\t[a, b]\tfalse\n")),
        "{listed}"
    );
    target.ok(&["trace_on", "-p", &name]);
    let traced = target.ok(&["-q", "list_vhosts", "name", "description", "tracing"]);
    assert!(
        traced.contains(&format!("\n{name}\tfor tests\ttrue\n")),
        "{traced}"
    );
    target.ok(&["trace_off", "-p", &name]);

    assert_eq!(
        target.ok(&["delete_vhost", &name]),
        format!("Deleting vhost \"{name}\" ...\n")
    );
    assert!(!target.ok(&["-q", "list_vhosts"]).contains(&name));
    assert_ne!(target.harectl(&["delete_vhost", &name]).code, 0);
}

#[test]
fn permissions_are_set_listed_and_cleared() {
    let target = target();
    let vhost = target.vhost();
    let vh = vhost.name.as_str();
    let user = unique("perm");
    target.ok(&["add_user", &user, "pw"]);
    let set = target.ok(&["set_permissions", "-p", vh, &user, "^a", ".*", ""]);
    assert_eq!(
        set,
        format!("Setting permissions for user \"{user}\" in vhost \"{vh}\" ...\n")
    );
    let listed = target.ok(&["list_permissions", "-p", vh]);
    assert!(
        listed.starts_with(&format!(
            "Listing permissions for vhost \"{vh}\" ...\nuser\tconfigure\twrite\tread\n"
        )),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("\n{user}\t^a\t.*\t\n")),
        "{listed}"
    );
    assert_eq!(
        target.ok(&["-q", "list_user_permissions", &user]),
        format!("vhost\tconfigure\twrite\tread\n{vh}\t^a\t.*\t\n")
    );
    target.ok(&["clear_permissions", "-p", vh, &user]);
    assert!(!target.ok(&["list_permissions", "-p", vh]).contains(&user));

    let missing = target.harectl(&[
        "set_permissions",
        "-p",
        vh,
        "no-such-user",
        ".*",
        ".*",
        ".*",
    ]);
    assert_eq!(missing.code, 67);
    target.ok(&["delete_user", &user]);
}

#[test]
fn policies_are_set_listed_and_cleared() {
    let target = target();
    let vhost = target.vhost();
    let vh = vhost.name.as_str();
    let definition = r#"{"max-length":5,"dead-letter-exchange":"dlx"}"#;
    target.ok(&[
        "set_policy",
        "-p",
        vh,
        "--priority",
        "3",
        "--apply-to",
        "queues",
        "p1",
        "^q\\.",
        definition,
    ]);
    assert_eq!(
        target.ok(&["-q", "list_policies", "-p", vh]),
        format!(
            "vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n\
             {vh}\tp1\t^q\\.\tqueues\t{{\"dead-letter-exchange\":\"dlx\",\"max-length\":5}}\t3\n"
        )
    );
    let bad = target.harectl(&["set_policy", "-p", vh, "p2", ".*", "{not json"]);
    assert_eq!(bad.code, 65);
    target.ok(&["clear_policy", "-p", vh, "p1"]);
    assert_eq!(target.ok(&["-q", "list_policies", "-p", vh]), "\n");
    assert_ne!(target.harectl(&["clear_policy", "-p", vh, "p1"]).code, 0);
}

#[test]
fn purge_and_delete_queue_report_and_refuse_as_rabbitmqctl() {
    let target = target();
    let vhost = target.vhost();
    let vh = vhost.name.as_str();
    target.declare_queue(vh, "q1", json!({}));
    target.publish(vh, "q1", 3);

    let not_empty = target.harectl(&["delete_queue", "-p", vh, "--if-empty", "q1"]);
    assert_eq!(not_empty.code, 64);
    assert_eq!(not_empty.stderr, "Error:\nThe queue is not empty\n");

    assert_eq!(
        target.ok(&["purge_queue", "-p", vh, "q1"]),
        format!("Purging queue 'q1' in vhost '{vh}' ...\n")
    );
    eventually(Duration::from_secs(20), || {
        target.ok(&["-s", "list_queues", "-p", vh]) == "q1\t0\n"
    });
    assert_ne!(target.harectl(&["purge_queue", "-p", vh, "nope"]).code, 0);

    let deleted = target.ok(&["delete_queue", "-p", vh, "-e", "q1"]);
    assert_eq!(
        deleted,
        format!(
            "Deleting queue 'q1' on vhost '{vh}' if queue is empty ...\n\
             Queue was successfully deleted with 0 ready messages\n"
        )
    );
    let gone = target.harectl(&["delete_queue", "-p", vh, "q1"]);
    assert_eq!(gone.code, 64);
    assert_eq!(gone.stderr, "Error:\nNo such queue was found\n");
}

#[test]
fn definitions_survive_an_export_and_import_round_trip() {
    let target = target();
    let vhost = target.vhost();
    let vh = vhost.name.as_str();
    target.import(&json!({
        "queues": [{"name": "orders", "vhost": vh, "durable": true, "auto_delete": false,
            "arguments": {"x-max-length": 7}}],
        "exchanges": [{"name": "ex1", "vhost": vh, "type": "topic", "durable": true,
            "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [{"source": "ex1", "vhost": vh, "destination": "orders",
            "destination_type": "queue", "routing_key": "o.*", "arguments": {}}],
    }));
    let file = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{vh}.json"));
    let path = file.to_str().expect("UTF-8 path");
    target.ok(&["export_definitions", path]);
    let exported: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("exported file"))
            .expect("exported JSON");
    assert!(exported["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .any(|queue| queue["vhost"] == vh && queue["name"] == "orders"));
    let stdout: Value = serde_json::from_str(&target.ok(&["export_definitions", "-"]))
        .expect("definitions on stdout");
    assert!(stdout["vhosts"].is_array());

    target.ok(&["delete_queue", "-p", vh, "orders"]);
    assert!(!target
        .ok(&["-s", "list_queues", "-p", vh])
        .contains("orders"));
    target.ok(&["import_definitions", path]);
    assert_eq!(
        target.ok(&["-s", "list_queues", "-p", vh, "name", "arguments"]),
        "orders\t[{\"x-max-length\",7}]\n"
    );
    assert!(target
        .ok(&["-s", "list_bindings", "-p", vh])
        .contains("ex1\texchange\torders\tqueue\to.*\t[]\n"));

    let empty = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{vh}-empty.json"));
    std::fs::write(&empty, b"").expect("write empty file");
    let refused = target.harectl(&["import_definitions", empty.to_str().expect("UTF-8")]);
    assert_eq!(refused.code, 65);
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&empty);
}

#[test]
fn an_unreachable_broker_is_exit_69_with_the_url_and_the_cause() {
    // Port 1 on loopback: nothing listens there.
    let unreachable = Target {
        url: "http://127.0.0.1:1".to_string(),
        _broker: None,
    };
    let run = unreachable.harectl(&["-q", "list_queues"]);
    assert_eq!(run.code, 69);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .starts_with("Error: unable to perform an operation on node at http://127.0.0.1:1"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("Cause:"), "{}", run.stderr);
    let timed_out = unreachable.harectl(&["-t", "1", "await_startup"]);
    assert_eq!(timed_out.code, 75);
}

#[test]
fn refused_credentials_and_bad_arguments_have_their_own_exit_codes() {
    let target = target();
    let refused = target.harectl(&["--password", "not-the-password", "list_users"]);
    assert_eq!(refused.code, 77);
    assert!(
        refused
            .stderr
            .contains("refused the credentials of user \"guest\""),
        "{}",
        refused.stderr
    );
    assert_eq!(target.harectl(&["no_such_command"]).code, 64);
    assert_eq!(target.harectl(&["add_vhost"]).code, 64);
    assert_eq!(target.harectl(&["ping"]).code, 0);
    assert_eq!(target.harectl(&["status"]).code, 0);
}
