//! Command-line arguments: rabbitmqctl's global options and commands (docs/harectl.md).
//!
//! Global options are accepted before or after the command, as rabbitmqctl accepts them, and
//! command names keep rabbitmqctl's snake_case spelling.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::Formatter;

/// The management API a broker listens on when nothing else is said.
pub const DEFAULT_URL: &str = "http://localhost:15672";
pub const MANAGEMENT_PORT: u16 = 15672;
/// rabbitmqctl's timeout for list commands, and ours for every request.
pub const DEFAULT_TIMEOUT_SECONDS: f64 = 60.0;
/// rabbitmqctl's default for `await_startup`.
pub const AWAIT_STARTUP_TIMEOUT_SECONDS: f64 = 300.0;

#[derive(Debug, Parser)]
#[command(
    name = "harectl",
    version,
    about = "Manage a Hare or RabbitMQ broker through its management HTTP API, as rabbitmqctl does",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalOptions {
    /// Management API base URL (default http://localhost:15672; env HARECTL_URL).
    #[arg(long, global = true)]
    pub url: Option<String>,
    /// Target node: rabbit@host, host or host:port; mapped to http://host:15672.
    #[arg(short = 'n', long, global = true)]
    pub node: Option<String>,
    #[arg(long, global = true, env = "HARECTL_USERNAME", default_value = "guest")]
    pub username: String,
    #[arg(
        long,
        global = true,
        env = "HARECTL_PASSWORD",
        default_value = "guest",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub password: String,
    /// Virtual host.
    #[arg(short = 'p', long, global = true, default_value = "/")]
    pub vhost: String,
    /// No banner.
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
    /// No banner and no table header.
    #[arg(short = 's', long, global = true)]
    pub silent: bool,
    #[arg(long, global = true)]
    pub no_table_headers: bool,
    /// Timeout in seconds (default 60; await_startup 300).
    #[arg(short = 't', long, global = true)]
    pub timeout: Option<f64>,
    #[arg(long, global = true, value_enum, default_value = "table")]
    pub formatter: Formatter,
    /// Accepted for rabbitmqctl compatibility; has no effect.
    #[arg(short = 'l', long, global = true)]
    pub longnames: bool,
}

impl GlobalOptions {
    /// The management API base URL: `--url`, then `-n`, then `HARECTL_URL`, then the default.
    pub fn base_url(&self, env_url: Option<String>) -> String {
        if let Some(url) = &self.url {
            return with_scheme(url);
        }
        if let Some(node) = &self.node {
            return node_url(node);
        }
        env_url
            .filter(|url| !url.is_empty())
            .map(|url| with_scheme(&url))
            .unwrap_or_else(|| DEFAULT_URL.to_string())
    }

    pub fn timeout(&self, default_seconds: f64) -> Duration {
        let seconds = self.timeout.unwrap_or(default_seconds);
        Duration::try_from_secs_f64(seconds.max(0.001)).unwrap_or(Duration::from_secs(3600))
    }
}

fn with_scheme(url: &str) -> String {
    if url.contains("://") {
        url.trim_end_matches('/').to_string()
    } else {
        format!("http://{}", url.trim_end_matches('/'))
    }
}

/// `rabbit@host` and `host` name the host, whose management API is on port 15672;
/// `host:port` names the API's port too.
pub fn node_url(node: &str) -> String {
    let host = node.rsplit_once('@').map_or(node, |(_, host)| host);
    let has_port = match host.rsplit_once(':') {
        Some((before, port)) => {
            port.parse::<u16>().is_ok() && (!before.contains(':') || before.ends_with(']'))
        }
        None => false,
    };
    if has_port {
        format!("http://{host}")
    } else if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{MANAGEMENT_PORT}")
    } else {
        format!("http://{host}:{MANAGEMENT_PORT}")
    }
}

#[derive(Debug, Subcommand)]
/// Command names are snake_case as in rabbitmqctl; that casing is inherited by the variants'
/// fields, so multi-word flags spell their kebab-case names out.
#[command(rename_all = "snake_case")]
pub enum Command {
    /// Displays the status of the node.
    Status,
    /// Checks that the node's management API answers.
    Ping,
    /// Waits until the node's management API answers (default timeout 300 s).
    AwaitStartup,
    ListQueues {
        #[arg(long)]
        online: bool,
        #[arg(long)]
        offline: bool,
        #[arg(long)]
        local: bool,
        columns: Vec<String>,
    },
    ListExchanges {
        columns: Vec<String>,
    },
    ListBindings {
        columns: Vec<String>,
    },
    ListConnections {
        columns: Vec<String>,
    },
    ListChannels {
        columns: Vec<String>,
    },
    ListConsumers {
        columns: Vec<String>,
    },
    ListUsers,
    ListVhosts {
        columns: Vec<String>,
    },
    ListPermissions,
    ListUserPermissions {
        user: String,
    },
    ListTopicPermissions,
    ListUserTopicPermissions {
        user: String,
    },
    ListPolicies,
    ListOperatorPolicies,
    ListVhostLimits {
        /// List the limits of every vhost.
        #[arg(long)]
        global: bool,
    },
    /// Lists one user's limits (guest unless --user), or every user's with --global.
    ListUserLimits {
        #[arg(long)]
        user: Option<String>,
        /// List the limits of every user.
        #[arg(long)]
        global: bool,
    },
    /// Creates a user; the password is read from stdin when omitted.
    AddUser {
        user: String,
        /// Distinct from the global --password, which authenticates harectl itself.
        #[arg(value_name = "PASSWORD")]
        user_password: Option<String>,
        /// The password argument is a base64 password hash (salt + SHA-256).
        #[arg(long = "pre-hashed-password")]
        pre_hashed_password: bool,
    },
    DeleteUser {
        user: String,
    },
    ChangePassword {
        user: String,
        /// Distinct from the global --password, which authenticates harectl itself.
        #[arg(value_name = "PASSWORD")]
        user_password: Option<String>,
    },
    ClearPassword {
        user: String,
    },
    AuthenticateUser {
        user: String,
        /// Distinct from the global --password, which authenticates harectl itself.
        #[arg(value_name = "PASSWORD")]
        user_password: Option<String>,
    },
    SetUserTags {
        user: String,
        tags: Vec<String>,
    },
    AddVhost {
        #[arg(value_name = "VHOST")]
        name: String,
        #[arg(long)]
        description: Option<String>,
        /// Comma-separated tags.
        #[arg(long)]
        tags: Option<String>,
        #[arg(long = "default-queue-type")]
        default_queue_type: Option<String>,
    },
    DeleteVhost {
        #[arg(value_name = "VHOST")]
        name: String,
    },
    SetPermissions {
        user: String,
        configure: String,
        write: String,
        read: String,
    },
    ClearPermissions {
        user: String,
    },
    SetTopicPermissions {
        user: String,
        exchange: String,
        write: String,
        read: String,
    },
    ClearTopicPermissions {
        user: String,
        exchange: Option<String>,
    },
    SetPolicy(PolicyArgs),
    ClearPolicy {
        name: String,
    },
    SetOperatorPolicy(PolicyArgs),
    ClearOperatorPolicy {
        name: String,
    },
    /// Sets limits such as '{"max-connections":100,"max-queues":10}'.
    SetVhostLimits {
        definition: String,
    },
    ClearVhostLimits,
    /// Sets the user's limits such as '{"max-connections":10,"max-channels":100}'; limits
    /// not named are kept.
    SetUserLimits {
        user: String,
        definition: String,
    },
    /// Clears one limit (max-connections or max-channels) of the user, or all.
    ClearUserLimits {
        user: String,
        limit: String,
    },
    PurgeQueue {
        queue: String,
    },
    DeleteQueue {
        queue: String,
        /// Only delete the queue if it has no messages.
        #[arg(short = 'e', long = "if-empty")]
        if_empty: bool,
        /// Only delete the queue if it has no consumers.
        #[arg(short = 'u', long = "if-unused")]
        if_unused: bool,
    },
    /// Closes the connection with this name (as `list_connections name` shows it).
    CloseConnection {
        connection: String,
        reason: String,
    },
    /// Closes every connection in the vhost, or on the node with --global.
    CloseAllConnections {
        reason: String,
        #[arg(long)]
        global: bool,
        /// Close at most this many connections.
        #[arg(long)]
        limit: Option<usize>,
    },
    TraceOn,
    TraceOff,
    /// Exports definitions as JSON to a file, or to stdout with "-".
    ExportDefinitions {
        path: String,
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// Imports definitions from a JSON file, or from stdin when no path is given.
    ImportDefinitions {
        path: Option<String>,
        #[arg(long, default_value = "json")]
        format: String,
        /// Accepted for rabbitmqctl compatibility; the import always runs.
        #[arg(long = "skip-if-unchanged")]
        skip_if_unchanged: bool,
    },
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    pub name: String,
    pub pattern: String,
    /// A JSON object such as '{"max-length":10}'.
    pub definition: String,
    #[arg(long, default_value_t = 0)]
    pub priority: i64,
    #[arg(long, default_value = "all")]
    pub apply_to: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("harectl").chain(args.iter().copied()))
            .expect("arguments parse")
    }

    #[test]
    fn a_node_name_maps_to_its_host_on_the_management_port() {
        assert_eq!(node_url("rabbit@broker1"), "http://broker1:15672");
        assert_eq!(node_url("broker1"), "http://broker1:15672");
        assert_eq!(node_url("broker1:8080"), "http://broker1:8080");
        assert_eq!(node_url("rabbit@10.0.0.1:15673"), "http://10.0.0.1:15673");
        assert_eq!(node_url("::1"), "http://[::1]:15672");
        assert_eq!(node_url("[::1]:8080"), "http://[::1]:8080");
    }

    #[test]
    fn url_wins_over_node_which_wins_over_the_environment() {
        let cli = parse(&["-n", "rabbit@h1", "--url", "http://h2:1", "status"]);
        assert_eq!(
            cli.global.base_url(Some("http://h3:2".into())),
            "http://h2:1"
        );
        let cli = parse(&["-n", "rabbit@h1", "status"]);
        assert_eq!(
            cli.global.base_url(Some("http://h3:2".into())),
            "http://h1:15672"
        );
        let cli = parse(&["status"]);
        assert_eq!(cli.global.base_url(Some("h3:2/".into())), "http://h3:2");
        assert_eq!(cli.global.base_url(None), DEFAULT_URL);
    }

    #[test]
    fn global_options_are_accepted_after_the_command() {
        let cli = parse(&["list_queues", "-p", "v1", "-q", "name", "messages"]);
        assert_eq!(cli.global.vhost, "v1");
        assert!(cli.global.quiet);
        match cli.command {
            Command::ListQueues { columns, .. } => assert_eq!(columns, ["name", "messages"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn multi_word_flags_are_kebab_case() {
        let cli = parse(&["add_vhost", "--default-queue-type", "quorum", "v1"]);
        assert!(matches!(
            cli.command,
            Command::AddVhost {
                default_queue_type: Some(_),
                ..
            }
        ));
        let cli = parse(&["add_user", "--pre-hashed-password", "u", "h"]);
        assert!(matches!(
            cli.command,
            Command::AddUser {
                pre_hashed_password: true,
                ..
            }
        ));
        parse(&["import_definitions", "--skip-if-unchanged", "f.json"]);
    }

    /// The user's password must not land in the global --password (they once shared an id).
    #[test]
    fn a_user_password_argument_is_not_harectls_own_password() {
        let cli = parse(&["add_user", "u1", "secret"]);
        assert_eq!(cli.global.password, "guest");
        match cli.command {
            Command::AddUser { user_password, .. } => {
                assert_eq!(user_password.as_deref(), Some("secret"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn delete_queue_takes_rabbitmqctl_short_flags() {
        let cli = parse(&["delete_queue", "--if-empty", "-u", "q1"]);
        match cli.command {
            Command::DeleteQueue {
                queue,
                if_empty,
                if_unused,
            } => {
                assert_eq!(queue, "q1");
                assert!(if_empty);
                assert!(if_unused);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn set_policy_takes_priority_and_apply_to() {
        let cli = parse(&[
            "set_policy",
            "--priority",
            "3",
            "--apply-to",
            "queues",
            "p1",
            "^q\\.",
            "{\"max-length\":5}",
        ]);
        match cli.command {
            Command::SetPolicy(policy) => {
                assert_eq!(policy.priority, 3);
                assert_eq!(policy.apply_to, "queues");
                assert_eq!(policy.pattern, "^q\\.");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
