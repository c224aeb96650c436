//! PostgreSQL connections. Each [`PgConn`] is one connection served by a thread of its own:
//! the synchronous client runs a small runtime of its own, which must never run inside the
//! engine's async runtime, so every statement is handed to that thread and waited for.
//!
//! A connection found dead before a statement is sent (the server restarted, the backend was
//! terminated while idle) is made again, for up to [`RECONNECT_FOR`], and the statement sent
//! then. A connection lost during a statement (closed, or ended by the server: SQLSTATE
//! 57P01-57P03) is [`DbError::ConnectionLost`]; inside a transaction that fails the
//! transaction, which the caller sees as an error (nothing of it was committed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::types::{IsNull, ToSql as PgToSql, Type, to_sql_checked};
use postgres::{Client, Statement};

pub use super::pg_url::PgUrl;
use super::pg_url::Settings;

use super::{DbError, Rows, Value};

/// How long a lost connection is tried again before the store is given up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// The reconnect window: `RELFLOW_STORE_RECONNECT` (`30s`, `2500ms`, as a pipeline writes a
/// duration), else [`RECONNECT_FOR`]. Tests of a store that stays down shorten it.
fn reconnect_for() -> Duration {
    std::env::var("RELFLOW_STORE_RECONNECT")
        .ok()
        .and_then(|text| crate::pipeline::duration::parse_duration(text.trim()).ok())
        .unwrap_or(RECONNECT_FOR)
}

/// Opens one connection to `url` (one attempt: a database that is down at start is an error
/// at once, not after the reconnect window).
pub(super) fn connect(url: &PgUrl, settings: &Settings) -> Result<Client, DbError> {
    let mut client = settings
        .config
        .connect(settings.tls.clone())
        .map_err(|e| {
            let mut message = format!("cannot connect to {url}: {}", describe(&e));
            if message.contains("certificate") || message.contains("Certificate") {
                message.push_str(
                    " (trust the server's CA with ?sslrootcert=FILE, or connect without TLS with ?sslmode=disable)",
                );
            }
            DbError::Postgres {
                message,
                conflict: false,
            }
        })?;
    // The server ends a query whose client went away instead of running it to its end.
    let _ = client.batch_execute("SET client_connection_check_interval = 2000");
    Ok(client)
}

/// The error in words, with the server's message when there is one.
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                text = format!("{text}: {inner}");
                source = inner.source();
            }
            text
        }
    }
}

fn is_conflict(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// The server ended the session (`pg_terminate_backend`, a shutdown, a restart still starting).
fn is_session_ended(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    e.code().is_some_and(|c| {
        *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
    })
}

/// What the connection thread is asked to do.
struct Job {
    sql: String,
    /// `None`: a batch of statements without parameters.
    params: Option<Vec<Value>>,
    in_transaction: bool,
    reply: mpsc::SyncSender<Result<(Rows, usize), DbError>>,
}

/// One connection, served by its own thread.
pub struct PgConn {
    url: PgUrl,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl PgConn {
    /// Connects to `url`; an error names the URL without its password.
    pub fn connect(url: &PgUrl) -> Result<PgConn, DbError> {
        let config = url.settings()?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (connected, outcome) = mpsc::sync_channel::<Result<(), DbError>>(1);
        let address = url.clone();
        // Even the first connection is made on the thread: the caller may be inside the
        // engine's runtime, where the client's own runtime must not run.
        let thread = std::thread::Builder::new()
            .name("relflow-pg".into())
            .spawn(move || {
                let client = match connect(&address, &config) {
                    Ok(client) => client,
                    Err(e) => {
                        let _ = connected.send(Err(e));
                        return;
                    }
                };
                let _ = connected.send(Ok(()));
                let mut server = Server {
                    url: address,
                    config,
                    client: Some(client),
                    statements: HashMap::new(),
                    transaction_lost: false,
                };
                for job in inbox {
                    let answer = server.serve(&job);
                    let _ = job.reply.send(answer);
                }
            })
            .map_err(|e| DbError::ConnectionLost(format!("cannot start a thread: {e}")))?;
        outcome.recv().map_err(|_| {
            DbError::ConnectionLost(format!("{url}: the connection thread ended"))
        })??;
        Ok(PgConn {
            url: url.clone(),
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    pub fn url(&self) -> &PgUrl {
        &self.url
    }

    /// Another handle on the same connection (its statements queue behind this one's).
    /// Only for callers that never open a transaction on it.
    pub fn share(&self) -> PgConn {
        PgConn {
            url: self.url.clone(),
            jobs: self.jobs.clone(),
            thread: None,
        }
    }

    fn ask(
        &self,
        sql: &str,
        params: Option<Vec<Value>>,
        in_transaction: bool,
    ) -> Result<(Rows, usize), DbError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job = Job {
            sql: sql.to_string(),
            params,
            in_transaction,
            reply,
        };
        let gone = || DbError::ConnectionLost(format!("{}: the connection thread ended", self.url));
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(job)
            .map_err(|_| gone())?;
        answer.recv().map_err(|_| gone())?
    }

    pub(super) fn run(
        &self,
        sql: &str,
        params: Vec<Value>,
        in_transaction: bool,
    ) -> Result<(Rows, usize), DbError> {
        self.ask(sql, Some(params), in_transaction)
    }

    pub(super) fn batch(&self, sql: &str, in_transaction: bool) -> Result<(), DbError> {
        self.ask(sql, None, in_transaction).map(|_| ())
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The connection thread's state.
struct Server {
    url: PgUrl,
    config: Settings,
    client: Option<Client>,
    /// Prepared statements of the current connection, by their SQL.
    statements: HashMap<String, Statement>,
    /// The connection was lost inside a transaction: its statements fail until it ends.
    transaction_lost: bool,
}

impl Server {
    fn serve(&mut self, job: &Job) -> Result<(Rows, usize), DbError> {
        if self.transaction_lost && job.in_transaction {
            let text = job.sql.trim();
            if job.params.is_none() && text.starts_with("ROLLBACK") {
                self.transaction_lost = text != "ROLLBACK";
                return Ok((empty(), 0));
            }
            if job.params.is_none() && text == "COMMIT" {
                self.transaction_lost = false;
            }
            return Err(self.lost("the transaction was lost with the connection"));
        }
        self.transaction_lost = false;
        // Outside a transaction, a connection that died while idle is found before the
        // statement is sent, so sending it on a new connection runs it once.
        if !job.in_transaction {
            let dead = match self.client.as_mut() {
                Some(client) => client.is_closed() || client.check_connection().is_err(),
                None => true,
            };
            if dead {
                self.reconnect()?;
            }
        }
        let Some(client) = self.client.as_mut() else {
            return Err(self.lost("no connection"));
        };
        let result = match &job.params {
            None => client
                .batch_execute(&job.sql)
                .map(|()| (empty(), 0))
                .map_err(|e| (e, client.is_closed())),
            Some(params) => run(client, &mut self.statements, &job.sql, params),
        };
        let (e, closed) = match result {
            Ok(done) => return Ok(done),
            Err(failed) => failed,
        };
        let message = format!("{}: {}", self.url, describe(&e));
        // The server's FATAL may arrive before the client notices the closed socket: the
        // session is gone either way.
        let ended = is_session_ended(&e);
        if !(closed || ended || self.client.as_ref().is_some_and(Client::is_closed)) {
            return Err(DbError::Postgres {
                message,
                conflict: is_conflict(&e),
            });
        }
        self.client = None;
        self.statements.clear();
        if job.in_transaction {
            self.transaction_lost = true;
        }
        tracing::warn!(target: "relflow::store", store = %self.url, error = %message, "the connection to the store was lost");
        Err(DbError::ConnectionLost(message))
    }

    fn lost(&self, why: &str) -> DbError {
        DbError::ConnectionLost(format!("{}: {why}", self.url))
    }

    /// Connects again, trying for up to [`reconnect_for`] (a restarting server refuses
    /// connections for a moment).
    fn reconnect(&mut self) -> Result<(), DbError> {
        self.client = None;
        self.statements.clear();
        let window = reconnect_for();
        let deadline = Instant::now() + window;
        let mut pause = Duration::from_millis(50);
        loop {
            match connect(&self.url, &self.config) {
                Ok(client) => {
                    tracing::info!(target: "relflow::store", store = %self.url, "connected to the store again");
                    self.client = Some(client);
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(DbError::ConnectionLost(format!(
                        "{e} (tried again for {window:?})"
                    )));
                }
                Err(e) => {
                    tracing::debug!(target: "relflow::store", error = %e, "reconnecting to the store");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

fn empty() -> Rows {
    Rows {
        names: Arc::from(Vec::<String>::new()),
        values: Vec::new(),
    }
}

/// `?N` placeholders (SQLite's) as `$N` (PostgreSQL's), outside quotes.
pub(super) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '?') => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

type Failed = (postgres::Error, bool);

fn run(
    client: &mut Client,
    statements: &mut HashMap<String, Statement>,
    sql: &str,
    params: &[Value],
) -> Result<(Rows, usize), Failed> {
    let statement = match statements.get(sql) {
        Some(statement) => statement.clone(),
        None => {
            let statement = client
                .prepare(&placeholders(sql))
                .map_err(|e| (e, client.is_closed()))?;
            statements.insert(sql.to_string(), statement.clone());
            statement
        }
    };
    let refs: Vec<&(dyn PgToSql + Sync)> = params.iter().map(|p| p as _).collect();
    if statement.columns().is_empty() {
        let changed = client
            .execute(&statement, &refs)
            .map_err(|e| (e, client.is_closed()))?;
        return Ok((empty(), usize::try_from(changed).unwrap_or(usize::MAX)));
    }
    let rows = client
        .query(&statement, &refs)
        .map_err(|e| (e, client.is_closed()))?;
    let names: Arc<[String]> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut values = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut out = Vec::with_capacity(names.len());
        for (i, column) in row.columns().iter().enumerate() {
            out.push(read(row, i, column.type_()).map_err(|e| (e, false))?);
        }
        values.push(out);
    }
    let count = values.len();
    Ok((Rows { names, values }, count))
}

/// Column `i` of `row` as a [`Value`] (narrow integers widened, booleans as 0/1).
fn read(row: &postgres::Row, i: usize, ty: &Type) -> Result<Value, postgres::Error> {
    let value = match *ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)?
            .map(|v| Value::Integer(v.into())),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)?
            .map(|v| Value::Integer(v.into())),
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)?
            .map(|v| Value::Integer(v.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)?
            .map(|v| Value::Real(v.into())),
        Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
        _ => row.try_get::<_, Option<String>>(i)?.map(Value::Text),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A value is sent as whatever type the statement expects of that parameter.
impl PgToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut postgres::types::private::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                _ => i.to_string().as_str().to_sql(ty, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(s) => s.as_str().to_sql(ty, out),
            Value::Blob(b) => b.as_slice().to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_as_postgres_reads_them() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
    }
}
