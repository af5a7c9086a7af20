//! `harectl`: a rabbitmqctl-compatible command-line tool that manages a Hare (or RabbitMQ)
//! broker through its management HTTP API, so it works against a remote broker too.
//!
//! Output formats, banners and exit codes follow rabbitmqctl (docs/harectl.md): scripts written
//! for `rabbitmqctl -q list_queues name messages` read the same bytes from `harectl`. This file
//! parses the arguments, builds the API client and dispatches; each command group lives in its
//! own module, and all printing goes through `output`.

mod args;
mod client;
mod connections;
mod context;
mod definitions;
mod error;
mod exchanges;
mod output;
mod permissions;
mod policies;
mod queues;
mod status;
mod tracing;
mod user_limits;
mod users;
mod vhosts;

use clap::Parser;

use args::{Cli, Command, AWAIT_STARTUP_TIMEOUT_SECONDS, DEFAULT_TIMEOUT_SECONDS};
use client::Client;
use context::Context;
use error::{CtlError, ExitCode};
use output::{Formatter, Output};
use policies::PolicyKind;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            // Help and version go to stdout with exit 0; bad arguments are rabbitmqctl's 64.
            let code = if error.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            };
            let _ = error.print();
            std::process::exit(code.code());
        }
    };
    let context = build_context(&cli);
    if let Err(error) = run(&context, cli.command) {
        report(&context, &error);
        std::process::exit(error.exit_code().code());
    }
}

fn build_context(cli: &Cli) -> Context {
    let global = &cli.global;
    let default_timeout = match cli.command {
        Command::AwaitStartup => AWAIT_STARTUP_TIMEOUT_SECONDS,
        _ => DEFAULT_TIMEOUT_SECONDS,
    };
    let timeout = global.timeout(default_timeout);
    let base_url = global.base_url(std::env::var("HARECTL_URL").ok());
    Context {
        client: Client::new(&base_url, &global.username, &global.password, timeout),
        output: Output {
            formatter: global.formatter,
            quiet: global.quiet || global.silent,
            headers: !(global.silent || global.no_table_headers),
        },
        vhost: global.vhost.clone(),
        timeout_seconds: timeout.as_secs_f64(),
    }
}

fn run(context: &Context, command: Command) -> Result<(), CtlError> {
    let c = context;
    match command {
        Command::Status => status::status(c),
        Command::Ping => status::ping(c),
        Command::AwaitStartup => status::await_startup(c),
        Command::ListQueues { columns, .. } => queues::list(c, &columns),
        Command::ListExchanges { columns } => exchanges::list_exchanges(c, &columns),
        Command::ListBindings { columns } => exchanges::list_bindings(c, &columns),
        Command::ListConnections { columns } => connections::list_connections(c, &columns),
        Command::ListChannels { columns } => connections::list_channels(c, &columns),
        Command::ListConsumers { columns } => connections::list_consumers(c, &columns),
        Command::ListUsers => users::list(c),
        Command::ListVhosts { columns } => vhosts::list(c, &columns),
        Command::ListPermissions => permissions::list(c),
        Command::ListUserPermissions { user } => permissions::list_for_user(c, &user),
        Command::ListTopicPermissions => permissions::list_topic(c),
        Command::ListUserTopicPermissions { user } => permissions::list_topic_for_user(c, &user),
        Command::ListPolicies => policies::list(c, PolicyKind::User),
        Command::ListOperatorPolicies => policies::list(c, PolicyKind::Operator),
        Command::ListVhostLimits { global } => vhosts::list_limits(c, global),
        Command::AddUser {
            user,
            user_password,
            pre_hashed_password,
        } => users::add(c, &user, user_password.as_deref(), pre_hashed_password),
        Command::DeleteUser { user } => users::delete(c, &user),
        Command::ChangePassword {
            user,
            user_password,
        } => users::change_password(c, &user, user_password.as_deref()),
        Command::ClearPassword { user } => users::clear_password(c, &user),
        Command::AuthenticateUser {
            user,
            user_password,
        } => users::authenticate(c, &user, user_password.as_deref()),
        Command::SetUserTags { user, tags } => users::set_tags(c, &user, &tags),
        Command::AddVhost {
            name,
            description,
            tags,
            default_queue_type,
        } => vhosts::add(
            c,
            &name,
            description.as_deref(),
            tags.as_deref(),
            default_queue_type.as_deref(),
        ),
        Command::DeleteVhost { name } => vhosts::delete(c, &name),
        Command::SetPermissions {
            user,
            configure,
            write,
            read,
        } => permissions::set(c, &user, &configure, &write, &read),
        Command::ClearPermissions { user } => permissions::clear(c, &user),
        Command::SetTopicPermissions {
            user,
            exchange,
            write,
            read,
        } => permissions::set_topic(c, &user, &exchange, &write, &read),
        Command::ClearTopicPermissions { user, exchange } => {
            permissions::clear_topic(c, &user, exchange.as_deref())
        }
        Command::SetPolicy(policy) => policies::set(c, PolicyKind::User, &policy),
        Command::ClearPolicy { name } => policies::clear(c, PolicyKind::User, &name),
        Command::SetOperatorPolicy(policy) => policies::set(c, PolicyKind::Operator, &policy),
        Command::ClearOperatorPolicy { name } => policies::clear(c, PolicyKind::Operator, &name),
        Command::SetVhostLimits { definition } => vhosts::set_limits(c, &definition),
        Command::ClearVhostLimits => vhosts::clear_limits(c),
        Command::SetUserLimits { user, definition } => user_limits::set(c, &user, &definition),
        Command::ClearUserLimits { user, limit } => user_limits::clear(c, &user, &limit),
        Command::ListUserLimits { user, global } => user_limits::list(c, user.as_deref(), global),
        Command::PurgeQueue { queue } => queues::purge(c, &queue),
        Command::DeleteQueue {
            queue,
            if_empty,
            if_unused,
        } => queues::delete(c, &queue, if_empty, if_unused),
        Command::CloseConnection { connection, reason } => {
            connections::close(c, &connection, &reason)
        }
        Command::CloseAllConnections {
            reason,
            global,
            limit,
        } => connections::close_all(c, &reason, global, limit),
        Command::TraceOn => tracing::set(c, true),
        Command::TraceOff => tracing::set(c, false),
        Command::ExportDefinitions { path, format } => definitions::export(c, &path, &format),
        Command::ImportDefinitions { path, format, .. } => {
            definitions::import(c, path.as_deref(), &format)
        }
    }
}

/// Errors go to stderr: `Error:` and the message in table mode, one JSON object with the
/// `--formatter json`, as rabbitmqctl writes them.
fn report(context: &Context, error: &CtlError) {
    match context.output.formatter {
        Formatter::Table => eprintln!("{}", error.stderr_text()),
        Formatter::Json => {
            let object = serde_json::json!({
                "result": "error",
                "url": context.client.base_url(),
                "message": error.to_string(),
            });
            eprintln!("{object}");
        }
    }
}
