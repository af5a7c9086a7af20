//! hareperf: command line → scenario run or report comparison. Nothing else lives here.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use hare_loadtest::cli::{Cli, Command};
use hare_loadtest::report::compare_html::{self, Column};
use hare_loadtest::report::model::Report;
use hare_loadtest::report::{compare, html, soak_summary, verdict};

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
            if let Some(soak) = &report.results.soak {
                // The generic table counts the other scenarios' producers and consumers, which
                // a soak does not use: its own summary says what happened. Printed before the
                // files are written: a long soak's verdict must survive a full disk.
                print!("{}", soak_summary::text(soak));
            }
            if let Some(path) = &json {
                report.write_json(path)?;
            }
            if let Some(path) = &html_path {
                std::fs::write(path, html::render(&report)?)?;
            }
            if report.results.soak.is_none() {
                let named = [(report.scenario.clone(), report.clone())];
                println!("{}\n", verdict::verdict(&report));
                print!(
                    "{}{}{}",
                    compare::table(&named),
                    compare::curves(&named),
                    compare::details(&named)
                );
            }
            if let Some(reason) = &report.results.broker_perf_unavailable {
                eprintln!("hareperf: perf unavailable, no syscall counts: {reason}");
            }
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
        Command::Compare {
            reports,
            html,
            median_runs,
        } => {
            let columns = load_columns(&reports, median_runs)?;
            let shown: Vec<(String, Report)> = columns
                .iter()
                .filter_map(|c| Some((c.name.clone(), compare_html::median_run(&c.runs)?.clone())))
                .collect();
            let table_columns: Vec<(String, Vec<&Report>)> = columns
                .iter()
                .map(|c| (c.name.clone(), c.runs.iter().collect()))
                .collect();
            print!(
                "{}{}{}",
                compare::median_table(&table_columns),
                compare::curves(&shown),
                compare::details(&shown)
            );
            if let Some(path) = &html {
                // One report gets the page `run --html` writes.
                let page = match columns.as_slice() {
                    [Column { runs, .. }] if runs.len() == 1 => html::render(&runs[0])?,
                    _ => compare_html::render(&columns)?,
                };
                std::fs::write(path, page)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The reports as columns: one per file, or with `median_runs` one per name of
/// `<name>-<n>.json`, in the order the names first appear.
fn load_columns(paths: &[std::path::PathBuf], median_runs: bool) -> anyhow::Result<Vec<Column>> {
    let mut columns: Vec<Column> = Vec::new();
    for path in paths {
        let report = Report::read_json(path)?;
        let mut name = column_name(path);
        if median_runs {
            name = run_group(&name).to_string();
        }
        match columns.iter_mut().find(|c| c.name == name && median_runs) {
            Some(column) => column.runs.push(report),
            None => columns.push(Column {
                name,
                runs: vec![report],
            }),
        }
    }
    Ok(columns)
}

/// `hare-2` → `hare`: the setup a numbered run belongs to (the name itself if unnumbered).
fn run_group(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((group, n))
            if !group.is_empty() && !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) =>
        {
            group
        }
        _ => name,
    }
}

/// A report's column name: its file name without `.json`.
fn column_name(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}
