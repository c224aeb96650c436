//! PostgreSQL connections. Each [`PgConn`] is one connection served by a thread of its own:
//! the synchronous client runs a small runtime of its own, which must never run inside the
//! engine's async runtime, so every statement is handed to that thread and waited for.
//!
//! A connection found dead before a statement is sent (the server restarted, the backend was
//! terminated while idle) is made again, for up to [`RECONNECT_FOR`], and the statement sent
//! then; a connection lost inside a transaction fails that transaction, which the caller
//! sees as an error (nothing of it was committed).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use postgres::types::{IsNull, ToSql as PgToSql, Type, to_sql_checked};
use postgres::{Client, Config, NoTls, Statement};

use super::{DbError, Rows, Value};

/// How long a lost connection is tried again before the store is given up.
const RECONNECT_FOR: Duration = Duration::from_secs(30);

/// A `postgres://` URL: kept whole to connect, shown without its password.
#[derive(Clone)]
pub struct PgUrl {
    url: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl PgUrl {
    /// `url` when it names a PostgreSQL database (`postgres://` or `postgresql://`).
    pub fn parse(url: &str) -> Option<PgUrl> {
        (url.starts_with("postgres://") || url.starts_with("postgresql://")).then(|| PgUrl {
            url: url.to_string(),
        })
    }

    /// The URL with any password replaced by `***` (in the user part and in `password=`).
    pub fn shown(&self) -> String {
        let (scheme, rest) = self
            .url
            .split_once("://")
            .unwrap_or(("postgres", &self.url));
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((user, host)) => match user.split_once(':') {
                Some((name, _)) => format!("{name}:***@{host}"),
                None => format!("{user}@{host}"),
            },
            None => authority.to_string(),
        };
        let tail = match tail.split_once('?') {
            Some((path, query)) => {
                let query: Vec<String> = query
                    .split('&')
                    .map(|pair| match pair.split_once('=') {
                        Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                            format!("{key}=***")
                        }
                        _ => pair.to_string(),
                    })
                    .collect();
                format!("{path}?{}", query.join("&"))
            }
            None => tail.to_string(),
        };
        format!("{scheme}://{authority}{tail}")
    }

    fn config(&self) -> Result<Config, DbError> {
        let mut config: Config = self.url.parse().map_err(|e| DbError::Postgres {
            message: format!("{}: not a PostgreSQL URL: {e}", self.shown()),
            conflict: false,
        })?;
        // Notice a dead peer in seconds, not in the kernel's two hours.
        config
            .application_name("relflow")
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(15));
        Ok(config)
    }
}

/// Opens one connection to `url` (one attempt: a database that is down at start is an error
/// at once, not after the reconnect window).
fn connect(url: &PgUrl, config: &Config) -> Result<Client, DbError> {
    let mut client = config.connect(NoTls).map_err(|e| DbError::Postgres {
        message: format!("cannot connect to {url}: {}", describe(&e)),
        conflict: false,
    })?;
    // The server ends a query whose client went away instead of running it to its end.
    let _ = client.batch_execute("SET client_connection_check_interval = 2000");
    Ok(client)
}

/// The error in words, with the server's message when there is one.
fn describe(e: &postgres::Error) -> String {
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
        let config = url.config()?;
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
    config: Config,
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
        match result {
            Ok(done) => Ok(done),
            Err((e, closed)) => {
                let message = format!("{}: {}", self.url, describe(&e));
                if closed || self.client.as_ref().is_some_and(Client::is_closed) {
                    self.client = None;
                    self.statements.clear();
                    if job.in_transaction {
                        self.transaction_lost = true;
                    }
                    tracing::warn!(target: "relflow::store", store = %self.url, error = %message, "the connection to the store was lost");
                    return Err(DbError::ConnectionLost(message));
                }
                Err(DbError::Postgres {
                    message,
                    conflict: is_conflict(&e),
                })
            }
        }
    }

    fn lost(&self, why: &str) -> DbError {
        DbError::ConnectionLost(format!("{}: {why}", self.url))
    }

    /// Connects again, trying for up to [`RECONNECT_FOR`] (a restarting server refuses
    /// connections for a moment).
    fn reconnect(&mut self) -> Result<(), DbError> {
        self.client = None;
        self.statements.clear();
        let deadline = Instant::now() + RECONNECT_FOR;
        let mut pause = Duration::from_millis(50);
        loop {
            match connect(&self.url, &self.config) {
                Ok(client) => {
                    tracing::info!(target: "relflow::store", store = %self.url, "connected to the store again");
                    self.client = Some(client);
                    return Ok(());
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(DbError::ConnectionLost(e.to_string()));
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

/// A connection that waits for `NOTIFY`s on some channels, on a thread of its own, and hands
/// each (channel, payload) to a callback; after a reconnect it calls it with an empty channel
/// (notices may have been missed), and likewise after each quiet second. The thread ends when
/// the callback returns `false`.
pub struct Listener;

type OnNotice = Box<dyn Fn(&str, &str) -> bool + Send>;

impl Listener {
    /// Listens on `channels` of the database at `url`.
    pub fn start(
        url: &PgUrl,
        channels: &[&str],
        on_notice: impl Fn(&str, &str) -> bool + Send + 'static,
    ) -> Result<Listener, DbError> {
        let config = url.config()?;
        let listen: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
        let address = url.clone();
        let on_notice: OnNotice = Box::new(on_notice);
        let (connected, outcome) = mpsc::sync_channel::<Result<(), DbError>>(1);
        // Connected on its own thread, like every connection (the caller may be async).
        std::thread::Builder::new()
            .name("relflow-listen".into())
            .spawn(move || {
                let client = connect(&address, &config).and_then(|mut client| {
                    client
                        .batch_execute(&listen)
                        .map_err(|e| DbError::Postgres {
                            message: describe(&e),
                            conflict: false,
                        })?;
                    Ok(client)
                });
                match client {
                    Ok(client) => {
                        let _ = connected.send(Ok(()));
                        listen_loop(&address, &config, client, &listen, &on_notice);
                    }
                    Err(e) => {
                        let _ = connected.send(Err(e));
                    }
                }
            })
            .map_err(|e| DbError::ConnectionLost(format!("cannot start a thread: {e}")))?;
        outcome
            .recv()
            .map_err(|_| DbError::ConnectionLost(format!("{url}: the listening thread ended")))??;
        Ok(Listener)
    }
}

fn listen_loop(
    url: &PgUrl,
    config: &Config,
    mut client: Client,
    listen: &str,
    on_notice: &OnNotice,
) {
    use postgres::fallible_iterator::FallibleIterator;
    loop {
        let failed = {
            let mut notifications = client.notifications();
            let mut iter = notifications.timeout_iter(Duration::from_secs(1));
            loop {
                match iter.next() {
                    Ok(Some(n)) => {
                        if !on_notice(n.channel(), n.payload()) {
                            return;
                        }
                    }
                    // A quiet second: is anyone still listening?
                    Ok(None) => {
                        if !on_notice("", "") {
                            return;
                        }
                        break false;
                    }
                    Err(_) => break true,
                }
            }
        };
        if !failed && !client.is_closed() {
            continue;
        }
        // Listen again on a new connection; notices may have been missed meanwhile.
        loop {
            std::thread::sleep(Duration::from_millis(200));
            if let Ok(mut fresh) = connect(url, config)
                && fresh.batch_execute(listen).is_ok()
            {
                client = fresh;
                break;
            }
            if !on_notice("", "") {
                return;
            }
        }
        if !on_notice("", "") {
            return;
        }
    }
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

    #[test]
    fn a_url_is_shown_without_its_password() {
        let url = PgUrl::parse(
            "postgres://relflow:s3cret@db.example:5432/rel?sslmode=require&password=x",
        )
        .unwrap();
        assert_eq!(
            url.shown(),
            "postgres://relflow:***@db.example:5432/rel?sslmode=require&password=***"
        );
        assert!(!format!("{url} {url:?}").contains("s3cret"));
        let plain = PgUrl::parse("postgresql://db/rel").unwrap();
        assert_eq!(plain.shown(), "postgresql://db/rel");
        assert!(PgUrl::parse("sqlite:x").is_none());
    }
}
