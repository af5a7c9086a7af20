//! User commands over `/api/users/{name}`: `list_users`, `add_user`, `delete_user`,
//! `change_password`, `clear_password`, `authenticate_user` and `set_user_tags`.
//!
//! The API replaces a user on PUT, so commands that change one property (password, tags) read
//! the user first and send back what they keep.

use std::io::Read;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::{api_path, ApiError, Client};
use crate::context::{field, tabulate, tags, Context};
use crate::error::{CtlError, ExitCode};
use crate::output::Cell;

const HASHING_ALGORITHM_DEFAULT: &str = "rabbit_password_hashing_sha256";

pub fn list(context: &Context) -> Result<(), CtlError> {
    context.output.banner("Listing users ...");
    let users = context.list(&api_path(&["users"]))?;
    let columns = vec!["user".to_string(), "tags".to_string()];
    context
        .output
        .table(&tabulate(&users, columns, |user, column| match column {
            "user" => Cell::Plain(field(user, "name")),
            _ => Cell::Plain(tags(user, "tags")),
        }));
    Ok(())
}

pub fn add(
    context: &Context,
    user: &str,
    password: Option<&str>,
    pre_hashed: bool,
) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Adding user \"{user}\" ..."));
    let password = password_or_stdin(password)?;
    let path = api_path(&["users", user]);
    if context.client.get_optional(&path)?.is_some() {
        return Err(CtlError::refused(
            ExitCode::Software,
            format!("User \"{user}\" already exists"),
        ));
    }
    let body = if pre_hashed {
        json!({
            "password_hash": password,
            "hashing_algorithm": HASHING_ALGORITHM_DEFAULT,
            "tags": "",
        })
    } else {
        json!({"password": password, "tags": ""})
    };
    context
        .client
        .put(&path, &body)
        .map_err(bad_request_is_data)?;
    context.output.banner(
        "Done. Don't forget to grant the user permissions to some virtual hosts! \
         See 'rabbitmqctl help set_permissions' to learn more.",
    );
    Ok(())
}

pub fn delete(context: &Context, user: &str) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Deleting user \"{user}\" ..."));
    match context.client.delete(&api_path(&["users", user]), None) {
        Err(ApiError::Status { status: 404, .. }) => Err(CtlError::no_such_user(user)),
        other => Ok(other?),
    }
}

pub fn change_password(
    context: &Context,
    user: &str,
    password: Option<&str>,
) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Changing password for user \"{user}\" ..."));
    let password = password_or_stdin(password)?;
    let existing = existing_user(context, user)?;
    let body = json!({"password": password, "tags": tags(&existing, "tags")});
    context
        .client
        .put(&api_path(&["users", user]), &body)
        .map_err(bad_request_is_data)?;
    Ok(())
}

/// Password login is disabled by an empty hash; the user keeps its tags and permissions.
pub fn clear_password(context: &Context, user: &str) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Clearing password for user \"{user}\" ..."));
    let existing = existing_user(context, user)?;
    let body = json!({"password_hash": "", "tags": tags(&existing, "tags")});
    context
        .client
        .put(&api_path(&["users", user]), &body)
        .map_err(bad_request_is_data)?;
    Ok(())
}

pub fn set_tags(context: &Context, user: &str, new_tags: &[String]) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Setting tags for user \"{user}\" to [{}] ...",
        new_tags.join(", ")
    ));
    let existing = existing_user(context, user)?;
    let mut body = json!({
        "password_hash": field(&existing, "password_hash"),
        "tags": new_tags.join(","),
    });
    if let Some(algorithm) = existing.get("hashing_algorithm") {
        body["hashing_algorithm"] = algorithm.clone();
    }
    context
        .client
        .put(&api_path(&["users", user]), &body)
        .map_err(bad_request_is_data)?;
    Ok(())
}

/// Logs in to the management API as the user. A 401 for a reason other than a failed login
/// ("Not management user") still proves the password right.
pub fn authenticate(context: &Context, user: &str, password: Option<&str>) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Authenticating user \"{user}\" ..."));
    let password = password_or_stdin(password)?;
    let timeout = Duration::from_secs_f64(context.timeout_seconds);
    let as_user = Client::new(context.client.base_url(), user, &password, timeout);
    match as_user.get(&api_path(&["whoami"])) {
        Ok(_) => {}
        Err(ApiError::CredentialsRefused { reason, .. }) if is_login_failure(&reason) => {
            return Err(CtlError::data(format!(
                "Error: failed to authenticate user \"{user}\"\nuser '{user}' - invalid credentials"
            )))
        }
        Err(ApiError::CredentialsRefused { .. }) => {}
        Err(error) => return Err(error.into()),
    }
    context.output.result_line("Success");
    Ok(())
}

fn is_login_failure(reason: &str) -> bool {
    let reason = reason.to_ascii_lowercase();
    !(reason.contains("not management")
        || reason.contains("not administrator")
        || reason.contains("not monitor")
        || reason.contains("access refused"))
}

/// The user's current definition; a missing user is exit 67.
fn existing_user(context: &Context, user: &str) -> Result<Value, CtlError> {
    context
        .client
        .get_optional(&api_path(&["users", user]))?
        .ok_or_else(|| CtlError::no_such_user(user))
}

/// A password given as an argument, or else the first line of stdin (as rabbitmqctl reads it).
fn password_or_stdin(password: Option<&str>) -> Result<String, CtlError> {
    if let Some(password) = password {
        return Ok(password.to_string());
    }
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|error| CtlError::data(format!("cannot read the password from stdin: {error}")))?;
    let password = input.lines().next().unwrap_or_default().to_string();
    if password.is_empty() {
        return Err(CtlError::usage(
            "no password given: pass it as an argument or on standard input",
        ));
    }
    Ok(password)
}

/// A 400 from the API is a data error (exit 65) with the API's reason.
pub fn bad_request_is_data(error: ApiError) -> CtlError {
    match error {
        ApiError::Status {
            status: 400,
            reason,
            ..
        } => CtlError::data(reason),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_login_fails_authentication() {
        assert!(is_login_failure("Login failed"));
        assert!(is_login_failure("unauthorised"));
        assert!(!is_login_failure("Not management user"));
        assert!(!is_login_failure("Access refused."));
    }
}
