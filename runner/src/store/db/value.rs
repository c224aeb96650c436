//! Values that cross the store boundary, the same for SQLite and PostgreSQL: parameters go in
//! as [`Value`]s and columns come out as [`Value`]s, read into Rust types by [`FromSql`].

use super::DbError;

/// One parameter or column value. Integers are 64-bit on both databases (PostgreSQL columns
/// are `BIGINT`; a narrower column is widened when read).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What can be a parameter.
pub trait ToSql {
    fn to_value(&self) -> Value;
}

/// What a column can be read as.
pub trait FromSql: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

/// `params![a, b]`: the parameters of one statement, `?1`, `?2`, ... in order.
#[macro_export]
macro_rules! db_params {
    () => { &[] as &[&dyn $crate::store::db::ToSql] };
    ($($param:expr),+ $(,)?) => { &[$(&$param as &dyn $crate::store::db::ToSql),+] as &[&dyn $crate::store::db::ToSql] };
}
pub use crate::db_params as params;

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToSql::to_value)
    }
}

macro_rules! integer_to_sql {
    ($($ty:ty),+) => {$(
        impl ToSql for $ty {
            fn to_value(&self) -> Value {
                Value::Integer(i64::from(*self))
            }
        }
    )+};
}
integer_to_sql!(i64, i32, u32, bool);

impl ToSql for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value {
        Value::Blob(self.clone())
    }
}

impl ToSql for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl FromSql for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl FromSql for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Integer(i) => Ok(*i),
            other => Err(format!("expected an integer, found {}", describe(other))),
        }
    }
}

impl FromSql for i32 {
    fn from_value(value: &Value) -> Result<Self, String> {
        let wide = i64::from_value(value)?;
        i32::try_from(wide).map_err(|_| format!("integer {wide} out of range"))
    }
}

impl FromSql for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromSql for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", describe(other))),
        }
    }
}

impl FromSql for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(format!("expected bytes, found {}", describe(other))),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real number",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

/// A column of a row: by position or by name.
pub trait ColumnIndex {
    fn position(&self, names: &[String]) -> Result<usize, DbError>;
}

impl ColumnIndex for usize {
    fn position(&self, names: &[String]) -> Result<usize, DbError> {
        if *self < names.len() {
            Ok(*self)
        } else {
            Err(DbError::Column(format!("no column {self}")))
        }
    }
}

impl ColumnIndex for &str {
    fn position(&self, names: &[String]) -> Result<usize, DbError> {
        names
            .iter()
            .position(|n| n == self)
            .ok_or_else(|| DbError::Column(format!("no column `{self}`")))
    }
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    pub(super) names: std::sync::Arc<[String]>,
    pub(super) values: Vec<Value>,
}

impl Row {
    /// Column `index` read as `T`.
    pub fn get<I: ColumnIndex, T: FromSql>(&self, index: I) -> Result<T, DbError> {
        let at = index.position(&self.names)?;
        T::from_value(&self.values[at])
            .map_err(|e| DbError::Column(format!("column `{}`: {e}", self.names[at])))
    }

    /// How many columns the row has.
    pub fn width(&self) -> usize {
        self.values.len()
    }
}

/// The parameters of a statement: `params![a, b]`, `[a]` (values of one type) or `[]`.
pub trait Params {
    fn values(&self) -> Vec<Value>;
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> Vec<Value> {
        self.iter().map(|p| p.to_value()).collect()
    }
}

impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> Vec<Value> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal)+) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> Vec<Value> {
                self.iter().map(ToSql::to_value).collect()
            }
        }
    )+};
}
array_params!(1 2 3 4);
