//! `export_definitions` and `import_definitions` over `GET`/`POST /api/definitions`
//! (docs/management-api.md, "Definitions"). Only the JSON format exists over HTTP.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;

use crate::client::api_path;
use crate::context::Context;
use crate::error::CtlError;
use crate::users::bad_request_is_data;

/// `-` writes the JSON to stdout, with no banner so that it can be piped.
pub fn export(context: &Context, path: &str, format: &str) -> Result<(), CtlError> {
    check_format(format)?;
    if path != "-" {
        check_parent_directory(path)?;
        context.output.banner(&format!(
            "Exporting definitions in JSON to a file at \"{path}\" ..."
        ));
    }
    let definitions = context.client.get(&api_path(&["definitions"]))?;
    let text = definitions.to_string();
    if path == "-" {
        let mut stdout = std::io::stdout().lock();
        return writeln!(stdout, "{text}")
            .and_then(|()| stdout.flush())
            .map_err(|error| CtlError::data(format!("cannot write to standard output: {error}")));
    }
    std::fs::write(path, text.as_bytes())
        .map_err(|error| CtlError::data(format!("cannot write {path}: {error}")))
}

/// Reads a file, or stdin when no path (or `-`) is given, and posts it as one merge import.
pub fn import(context: &Context, path: Option<&str>, format: &str) -> Result<(), CtlError> {
    check_format(format)?;
    let text = match path {
        None | Some("-") => {
            context
                .output
                .banner("Importing definitions in JSON from standard input ...");
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| CtlError::data(format!("cannot read standard input: {error}")))?;
            if text.trim().is_empty() {
                return Err(CtlError::data("Standard input is empty"));
            }
            text
        }
        Some(path) => {
            if !Path::new(path).exists() {
                return Err(CtlError::data(format!("File {path} does not exist")));
            }
            context.output.banner(&format!(
                "Importing definitions in JSON from a file at \"{path}\" ..."
            ));
            let text = std::fs::read_to_string(path)
                .map_err(|error| CtlError::data(format!("cannot read {path}: {error}")))?;
            if text.is_empty() {
                return Err(CtlError::data(format!("File {path} is zero-sized")));
            }
            text
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(_)) => {}
        Ok(_) => return Err(CtlError::data("the definitions must be a JSON object")),
        Err(error) => {
            return Err(CtlError::data(format!(
                "the definitions are not valid JSON: {error}"
            )))
        }
    }
    context
        .client
        .post(&api_path(&["definitions"]), &text)
        .map_err(bad_request_is_data)?;
    context.output.banner("Successfully imported definitions.");
    Ok(())
}

fn check_format(format: &str) -> Result<(), CtlError> {
    if format.eq_ignore_ascii_case("json") {
        Ok(())
    } else {
        Err(CtlError::usage(format!(
            "Format {format} is not supported over the management API; use --format json"
        )))
    }
}

fn check_parent_directory(path: &str) -> Result<(), CtlError> {
    let parent = match Path::new(path).parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => return Ok(()),
    };
    if parent.is_dir() {
        Ok(())
    } else {
        Err(CtlError::data(format!(
            "Directory {} does not exist",
            parent.display()
        )))
    }
}
