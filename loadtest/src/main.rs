//! hareperf: command line → scenario run or report comparison. Nothing else lives here.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use hare_loadtest::cli::{Cli, Command};
use hare_loadtest::report::model::Report;
use hare_loadtest::report::{compare, html};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hareperf: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => {
            let json = args.json.clone();
            let html_path = args.html.clone();
            let report = hare_loadtest::scenario::run(*args)?;
            if let Some(path) = &json {
                report.write_json(path)?;
            }
            if let Some(path) = &html_path {
                std::fs::write(path, html::render(&report)?)?;
            }
            let named = [(report.scenario.clone(), report.clone())];
            print!(
                "{}{}{}",
                compare::table(&named),
                compare::curves(&named),
                compare::details(&named)
            );
            for error in &report.errors {
                eprintln!("hareperf: {error}");
            }
            let v = &report.results.verification;
            if let Some(left) = v.left_queued {
                eprintln!("hareperf: no consumers: {left} messages left queued");
            }
            if v.lost > 0 {
                eprintln!(
                    "hareperf: {} of {} messages never arrived (e.g. {})",
                    v.lost,
                    v.expected,
                    v.lost_sample.join(", ")
                );
            }
            Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Compare { reports } => {
            let loaded = reports
                .iter()
                .map(|path| Ok((column_name(path), Report::read_json(path)?)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            print!(
                "{}{}{}",
                compare::table(&loaded),
                compare::curves(&loaded),
                compare::details(&loaded)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A report's column name: its file name without `.json`.
fn column_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}
