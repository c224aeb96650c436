//! `relflow token create NAME --role viewer|operator`, `token list [--json]`, `token revoke
//! NAME`: the tokens `relflow serve` accepts. The store keeps only their SHA-256.

use std::path::Path;

use serde::Serialize;

use crate::cli::error::CliError;
use crate::exit_code;
use crate::output::json;
use crate::serve::secret;
use crate::store::Store;
use crate::store::tokens::{Role, TokenRecord};

/// Creates a token and prints it alone on stdout (it is not shown again).
pub fn create(state_dir: &Path, name: &str, role: Role) -> Result<i32, CliError> {
    let valid = !name.is_empty()
        && name.len() <= 100
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if !valid {
        return Err(CliError::input(format!(
            "error: token name `{name}`: use 1 to 100 letters, digits, `-`, `_`, `.` or `@` (it is recorded as the actor)"
        )));
    }
    let store = Store::open(state_dir)?;
    let token = secret::new_token().map_err(|e| CliError::state(format!("error: {e}")))?;
    if !store.create_token(name, role, &secret::hash(&token))? {
        return Err(CliError::input(format!(
            "error: a token named `{name}` exists already (revoke it first: relflow token revoke {name})"
        )));
    }
    eprintln!(
        "Created {} token `{name}`; it is printed below once and not kept.",
        role.as_str()
    );
    println!("{token}");
    Ok(exit_code::OK)
}

#[derive(Serialize)]
struct TokenList {
    tokens: Vec<TokenRecord>,
}

/// Lists tokens: name, role, created, last used (never the token).
pub fn list(state_dir: &Path, as_json: bool) -> Result<i32, CliError> {
    let tokens = Store::open_read_only(state_dir)?.tokens()?;
    if as_json {
        json::print(&TokenList { tokens });
        return Ok(exit_code::OK);
    }
    if tokens.is_empty() {
        println!("No tokens (create one with: relflow token create NAME --role viewer|operator)");
    }
    for t in &tokens {
        let used = t
            .last_used_at
            .map(crate::output::time::rfc3339_ms)
            .unwrap_or_else(|| "never".to_string());
        println!(
            "{:<20} {:<9} created {}  last used {used}",
            t.name,
            t.role.as_str(),
            crate::output::time::rfc3339_ms(t.created_at)
        );
    }
    Ok(exit_code::OK)
}

/// Revokes a token and ends its sessions.
pub fn revoke(state_dir: &Path, name: &str) -> Result<i32, CliError> {
    if !Store::open(state_dir)?.revoke_token(name)? {
        return Err(CliError::input(format!("error: no token named `{name}`")));
    }
    eprintln!("Revoked token `{name}` and ended its sessions.");
    Ok(exit_code::OK)
}
