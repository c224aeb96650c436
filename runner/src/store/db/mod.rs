//! One connection to the store's database, SQLite or PostgreSQL, behind one small API: the
//! store's queries are written once (SQLite's `?N` placeholders, SQL both databases read)
//! and run on either.
//!
//! - [`Db::execute`], [`Db::query_row`], [`Db::query_map`] run one statement.
//! - [`Db::atomically`] runs a closure in a transaction (when one is open already: a
//!   savepoint on SQLite, the open transaction itself on PostgreSQL), committed when it
//!   returns `Ok`.
//! - [`Dialect`] tells the few places whose SQL differs (row locks, the schema).

mod listen;
mod pg;
mod pg_url;
mod sqlite;
mod value;

use std::cell::Cell;

pub use listen::Listener;
pub use pg::{PgConn, PgUrl};
pub use value::{ColumnIndex, FromSql, Params, Row, ToSql, Value, params};

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement failed, or a row did not hold what was asked of it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the query returned no row")]
    NoRows,
    #[error("{0}")]
    Column(String),
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{message}")]
    Postgres {
        message: String,
        /// A unique or exclusion violation, a serialization failure: the statement lost a race.
        conflict: bool,
    },
    /// The connection to PostgreSQL is gone and could not be made again in time.
    #[error("the connection to the store was lost: {0}")]
    ConnectionLost(String),
}

/// `.optional()` on a query result: no row is `None`, not an error.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(DbError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

enum Inner {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
}

/// An open connection.
pub struct Db {
    inner: Inner,
    /// Open transactions and savepoints on this connection.
    depth: Cell<u32>,
}

/// Rows of one statement: their column names and values.
pub(crate) struct Rows {
    pub names: std::sync::Arc<[String]>,
    pub values: Vec<Vec<Value>>,
}

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Db {
        Db {
            inner: Inner::Sqlite(conn),
            depth: Cell::new(0),
        }
    }

    pub fn postgres(conn: PgConn) -> Db {
        Db {
            inner: Inner::Postgres(conn),
            depth: Cell::new(0),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection underneath (schema checks and copies are SQLite's own).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(conn) => Some(conn),
            Inner::Postgres(_) => None,
        }
    }

    /// The PostgreSQL connection underneath.
    pub fn as_postgres(&self) -> Option<&PgConn> {
        match &self.inner {
            Inner::Sqlite(_) => None,
            Inner::Postgres(conn) => Some(conn),
        }
    }

    fn run(&self, sql: &str, params: impl Params) -> Result<(Rows, usize), DbError> {
        let values = params.values();
        match &self.inner {
            Inner::Sqlite(conn) => sqlite::run(conn, sql, &values),
            Inner::Postgres(conn) => conn.run(sql, values, self.depth.get() > 0),
        }
    }

    /// Runs one statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize, DbError> {
        Ok(self.run(sql, params)?.1)
    }

    /// Runs an `INSERT ... RETURNING id`; returns the id.
    pub fn insert_returning_id(&self, sql: &str, params: impl Params) -> Result<i64, DbError> {
        self.query_row(sql, params, |row| row.get(0))
    }

    /// The first row of a query, read by `read`; [`DbError::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        read: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let (rows, _) = self.run(sql, params)?;
        let values = rows.values.into_iter().next().ok_or(DbError::NoRows)?;
        read(&Row {
            names: rows.names,
            values,
        })
    }

    /// Every row of a query, each read by `read`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut read: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let (rows, _) = self.run(sql, params)?;
        rows.values
            .into_iter()
            .map(|values| {
                read(&Row {
                    names: rows.names.clone(),
                    values,
                })
            })
            .collect()
    }

    /// Runs statements without parameters, separated by `;`.
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        match &self.inner {
            Inner::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Inner::Postgres(conn) => conn.batch(sql, self.depth.get() > 0),
        }
    }

    /// Runs `work` atomically: in a new transaction (SQLite takes the write lock at once, so
    /// two writers queue instead of failing half-way), or in a savepoint of the open one.
    pub fn atomically<T, E: From<DbError>>(
        &self,
        work: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        let depth = self.depth.get();
        if depth > 0 && self.dialect() == Dialect::Postgres {
            // Inside a transaction a savepoint would cost PostgreSQL two round trips per
            // nested write, and buys nothing here: every caller hands an inner error up, so
            // the whole transaction rolls back (PostgreSQL aborts it on a failed statement
            // anyway). SQLite keeps its savepoints: they are free in-process.
            self.depth.set(depth + 1);
            let result = work(self);
            self.depth.set(depth);
            return result;
        }
        let (begin, commit, undo) = if depth == 0 {
            let begin = match self.dialect() {
                Dialect::Sqlite => "BEGIN IMMEDIATE",
                Dialect::Postgres => "BEGIN",
            };
            (
                begin.to_string(),
                "COMMIT".to_string(),
                "ROLLBACK".to_string(),
            )
        } else {
            let name = format!("relflow_{depth}");
            (
                format!("SAVEPOINT {name}"),
                format!("RELEASE SAVEPOINT {name}"),
                format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}"),
            )
        };
        self.execute_batch(&begin)?;
        self.depth.set(depth + 1);
        let result = work(self);
        let ended = match &result {
            Ok(_) => self.execute_batch(&commit),
            Err(_) => self.execute_batch(&undo),
        };
        self.depth.set(depth);
        if let Err(e) = ended {
            if depth == 0 && result.is_ok() {
                // A failed COMMIT leaves SQLite's transaction open; end it.
                let _ = self.execute_batch("ROLLBACK");
            }
            if result.is_ok() {
                return Err(E::from(e));
            }
        }
        result
    }

    /// Whether a transaction is open on this connection.
    pub fn in_transaction(&self) -> bool {
        self.depth.get() > 0
    }
}

/// A statement of one connection, for code written as `prepare_cached(sql)?.execute(params)`.
pub struct Stmt<'a> {
    db: &'a Db,
    sql: String,
}

impl Db {
    /// The statement `sql` (each database caches its prepared form per connection).
    pub fn prepare_cached(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        Ok(Stmt {
            db: self,
            sql: sql.to_string(),
        })
    }

    /// As [`Db::prepare_cached`].
    pub fn prepare(&self, sql: &str) -> Result<Stmt<'_>, DbError> {
        self.prepare_cached(sql)
    }
}

impl Stmt<'_> {
    pub fn execute(&mut self, params: impl Params) -> Result<usize, DbError> {
        self.db.execute(&self.sql, params)
    }

    /// Every row, each read by `read`, to be collected by the caller.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        read: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let (rows, _) = self.db.run(&self.sql, params)?;
        let mut read = read;
        let names = rows.names;
        Ok(rows
            .values
            .into_iter()
            .map(|values| {
                read(&Row {
                    names: names.clone(),
                    values,
                })
            })
            .collect::<Vec<_>>()
            .into_iter())
    }
}
