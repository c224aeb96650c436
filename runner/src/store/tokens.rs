//! API tokens and browser sessions of `relflow serve`. Only a token's SHA-256 is stored; a
//! session belongs to the token it was opened with and ends when that token is revoked.

use super::db::{DbError, Dialect, OptionalExtension, Row, params};
use serde::Serialize;

use super::{Store, StoreError, now_ms};

/// What a token's holder may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads releases, logs, targets and pipelines.
    Viewer,
    /// Reads, and orders actions (start, retry, skip, abort, ...).
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            _ => None,
        }
    }
}

/// A token as the store keeps it (never the token itself).
#[derive(Debug, Clone, Serialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: Role,
    #[serde(serialize_with = "crate::output::json::rfc3339")]
    pub created_at: i64,
    #[serde(serialize_with = "crate::output::json::rfc3339_opt")]
    pub last_used_at: Option<i64>,
}

/// A browser session: whose token it runs as, and the CSRF token its forms must carry.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id_hash: String,
    pub token: TokenRecord,
    pub csrf: String,
}

fn token_of(row: &Row, at: usize) -> Result<TokenRecord, DbError> {
    let role: String = row.get(at + 1)?;
    Ok(TokenRecord {
        name: row.get(at)?,
        // Only this module writes the column; an unknown value reads as the lesser role.
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        created_at: row.get(at + 2)?,
        last_used_at: row.get(at + 3)?,
    })
}

impl Store {
    /// Stores a new token by its hash; `false` when the name is taken.
    pub fn create_token(&self, name: &str, role: Role, hash: &str) -> Result<bool, StoreError> {
        let added = self.conn.execute(
            "INSERT INTO tokens (name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO NOTHING",
            params![name, role.as_str(), hash, now_ms()],
        )?;
        Ok(added == 1)
    }

    /// Every token, by name.
    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        if self.is_read_only && !self.has_table("tokens")? {
            return Ok(Vec::new());
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, role, created_at, last_used_at FROM tokens ORDER BY name",
        )?;
        let rows = stmt.query_map([], |row| token_of(row, 0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn has_table(&self, table: &str) -> Result<bool, StoreError> {
        // The shared store is migrated to this build's schema when it is opened.
        if self.conn.dialect() == Dialect::Postgres {
            return Ok(true);
        }
        let found: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The token whose SHA-256 is `hash`; notes when it was last used.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let token = self
            .conn
            .query_row(
                "SELECT name, role, created_at, last_used_at FROM tokens WHERE hash = ?1",
                [hash],
                |row| token_of(row, 0),
            )
            .optional()?;
        if let Some(token) = &token {
            self.conn.execute(
                "UPDATE tokens SET last_used_at = ?1 WHERE name = ?2",
                params![now_ms(), token.name],
            )?;
        }
        Ok(token)
    }

    /// Removes a token and ends its sessions; `false` when there is no such token.
    pub fn revoke_token(&self, name: &str) -> Result<bool, StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE token_name = ?1", [name])?;
        let removed = self
            .conn
            .execute("DELETE FROM tokens WHERE name = ?1", [name])?;
        Ok(removed == 1)
    }

    /// Opens a session for `token` (the id is kept only by its hash).
    pub fn create_session(&self, id_hash: &str, token: &str, csrf: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO sessions (id_hash, token_name, csrf, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![id_hash, token, csrf, now_ms()],
        )?;
        Ok(())
    }

    /// The session whose id hashes to `id_hash`, with its token (none once it is revoked).
    pub fn session(&self, id_hash: &str) -> Result<Option<SessionRecord>, StoreError> {
        let session = self
            .conn
            .query_row(
                "SELECT s.id_hash, s.csrf, t.name, t.role, t.created_at, t.last_used_at
                 FROM sessions s JOIN tokens t ON t.name = s.token_name WHERE s.id_hash = ?1",
                [id_hash],
                |row| {
                    Ok(SessionRecord {
                        id_hash: row.get(0)?,
                        csrf: row.get(1)?,
                        token: token_of(row, 2)?,
                    })
                },
            )
            .optional()?;
        Ok(session)
    }

    /// Ends a session (logout).
    pub fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
        Ok(())
    }
}
