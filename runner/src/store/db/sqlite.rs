//! Running a statement on SQLite (prepared once per connection and cached).

use std::sync::Arc;

use rusqlite::types::Value as SqliteValue;

use super::{DbError, Rows, Value};

fn to_sqlite(value: &Value) -> SqliteValue {
    match value {
        Value::Null => SqliteValue::Null,
        Value::Integer(i) => SqliteValue::Integer(*i),
        Value::Real(f) => SqliteValue::Real(*f),
        Value::Text(s) => SqliteValue::Text(s.clone()),
        Value::Blob(b) => SqliteValue::Blob(b.clone()),
    }
}

fn from_sqlite(value: SqliteValue) -> Value {
    match value {
        SqliteValue::Null => Value::Null,
        SqliteValue::Integer(i) => Value::Integer(i),
        SqliteValue::Real(f) => Value::Real(f),
        SqliteValue::Text(s) => Value::Text(s),
        SqliteValue::Blob(b) => Value::Blob(b),
    }
}

/// Runs `sql` with `params`: its rows, and how many rows it changed.
pub(super) fn run(
    conn: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<(Rows, usize), DbError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let names: Arc<[String]> = stmt.column_names().iter().map(|n| n.to_string()).collect();
    let params = rusqlite::params_from_iter(params.iter().map(to_sqlite));
    if names.is_empty() {
        let changed = stmt.execute(params)?;
        return Ok((
            Rows {
                names,
                values: Vec::new(),
            },
            changed,
        ));
    }
    let width = names.len();
    let mut rows = stmt.query(params)?;
    let mut values = Vec::new();
    while let Some(row) = rows.next()? {
        let row = (0..width)
            .map(|i| row.get::<_, SqliteValue>(i).map(from_sqlite))
            .collect::<Result<Vec<_>, _>>()?;
        values.push(row);
    }
    drop(rows);
    let changed = usize::try_from(conn.changes()).unwrap_or(0);
    Ok((Rows { names, values }, changed))
}
