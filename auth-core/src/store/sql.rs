//! The backend-neutral statement layer: a [`Statement`] is one SQL text with
//! its bound values, run by an [`Executor`] (the store's pool or an open
//! [`Transaction`]) on whichever backend the store uses. This is the only
//! place that tells SQLite from PostgreSQL.
//!
//! Values are bound as the same Rust types on both backends (`Uuid`, `i64`,
//! text, bytes, `bool`), so PostgreSQL sees the column types it expects.
//! `sqlx::Any` would do the dispatch for us but has no UUID type, and every
//! id is one.

use std::borrow::Cow;

use sqlx::{
    Arguments, Database, Encode, FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Type,
    postgres::PgRow, sqlite::SqliteRow,
};
use uuid::Uuid;

/// The store's connection pool, on one backend.
#[derive(Clone, Debug)]
pub(super) enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Backend {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub(super) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// On SQLite the transaction begins `IMMEDIATE`: writers queue on the
    /// database lock instead of failing when two read-then-write transactions
    /// meet. PostgreSQL serialises on row locks instead.
    pub(super) async fn begin(&self) -> sqlx::Result<Transaction> {
        Ok(match self {
            Self::Sqlite(pool) => Transaction(Open::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)),
            Self::Postgres(pool) => Transaction(Open::Postgres(pool.begin().await?)),
        })
    }
}

/// An open transaction, begun by [`super::Store::begin`]. Dropped without
/// [`Transaction::commit`], it rolls back.
#[derive(Debug)]
pub struct Transaction(Open);

#[derive(Debug)]
enum Open {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Transaction {
    pub async fn commit(self) -> crate::error::Result<()> {
        match self.0 {
            Open::Sqlite(tx) => tx.commit().await?,
            Open::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Where a statement runs: the pool (its own implicit transaction) or an
/// open transaction.
pub(crate) enum Executor<'c> {
    SqlitePool(&'c SqlitePool),
    PostgresPool(&'c PgPool),
    SqliteTx(&'c mut SqliteConnection),
    PostgresTx(&'c mut PgConnection),
}

impl<'c> From<&'c super::Store> for Executor<'c> {
    fn from(store: &'c super::Store) -> Self {
        match &store.backend {
            Backend::Sqlite(pool) => Self::SqlitePool(pool),
            Backend::Postgres(pool) => Self::PostgresPool(pool),
        }
    }
}

impl<'c> From<&'c mut Transaction> for Executor<'c> {
    fn from(tx: &'c mut Transaction) -> Self {
        match &mut tx.0 {
            Open::Sqlite(tx) => Self::SqliteTx(tx),
            Open::Postgres(tx) => Self::PostgresTx(tx),
        }
    }
}

/// A row type both backends can decode (every `sqlx::FromRow` of ours).
pub(crate) trait Row: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

impl<T> Row for T where T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin {}

/// A bound value: the few types the schema uses (ids are UUIDs, times are
/// Unix milliseconds).
#[derive(Debug, Clone)]
pub(crate) enum Value<'a> {
    Uuid(Option<Uuid>),
    Int(Option<i64>),
    Text(Option<&'a str>),
    Bytes(Cow<'a, [u8]>),
    Bool(bool),
}

impl From<Uuid> for Value<'_> {
    fn from(value: Uuid) -> Self {
        Self::Uuid(Some(value))
    }
}

impl From<Option<Uuid>> for Value<'_> {
    fn from(value: Option<Uuid>) -> Self {
        Self::Uuid(value)
    }
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}

impl From<Option<i64>> for Value<'_> {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Some(value))
    }
}

impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Self::Text(value)
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(value: &'a [u8]) -> Self {
        Self::Bytes(Cow::Borrowed(value))
    }
}

impl From<Vec<u8>> for Value<'_> {
    fn from(value: Vec<u8>) -> Self {
        Self::Bytes(Cow::Owned(value))
    }
}

impl From<bool> for Value<'_> {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// One SQL text (`$n` placeholders, portable SQL) and its values, in order.
#[must_use]
pub(crate) struct Statement<'a> {
    sql: &'static str,
    values: Vec<Value<'a>>,
}

pub(crate) fn statement<'a>(sql: &'static str) -> Statement<'a> {
    Statement { sql, values: Vec::new() }
}

impl<'a> Statement<'a> {
    pub(crate) fn bind(mut self, value: impl Into<Value<'a>>) -> Self {
        self.values.push(value.into());
        self
    }

    /// Runs the statement; the number of rows it changed.
    pub(crate) async fn execute<'c>(self, on: impl Into<Executor<'c>>) -> sqlx::Result<u64> {
        let Self { sql, values } = self;
        Ok(match on.into() {
            Executor::SqlitePool(pool) => {
                sqlx::query_with(sql, arguments::<Sqlite>(&values)?).execute(pool).await?.rows_affected()
            }
            Executor::PostgresPool(pool) => {
                sqlx::query_with(sql, arguments::<Postgres>(&values)?).execute(pool).await?.rows_affected()
            }
            Executor::SqliteTx(conn) => {
                sqlx::query_with(sql, arguments::<Sqlite>(&values)?).execute(conn).await?.rows_affected()
            }
            Executor::PostgresTx(conn) => {
                sqlx::query_with(sql, arguments::<Postgres>(&values)?).execute(conn).await?.rows_affected()
            }
        })
    }

    pub(crate) async fn fetch_all<'c, T: Row>(self, on: impl Into<Executor<'c>>) -> sqlx::Result<Vec<T>> {
        let Self { sql, values } = self;
        match on.into() {
            Executor::SqlitePool(pool) => sqlx::query_as_with(sql, arguments::<Sqlite>(&values)?).fetch_all(pool).await,
            Executor::PostgresPool(pool) => {
                sqlx::query_as_with(sql, arguments::<Postgres>(&values)?).fetch_all(pool).await
            }
            Executor::SqliteTx(conn) => sqlx::query_as_with(sql, arguments::<Sqlite>(&values)?).fetch_all(conn).await,
            Executor::PostgresTx(conn) => {
                sqlx::query_as_with(sql, arguments::<Postgres>(&values)?).fetch_all(conn).await
            }
        }
    }

    pub(crate) async fn fetch_optional<'c, T: Row>(self, on: impl Into<Executor<'c>>) -> sqlx::Result<Option<T>> {
        let Self { sql, values } = self;
        match on.into() {
            Executor::SqlitePool(pool) => {
                sqlx::query_as_with(sql, arguments::<Sqlite>(&values)?).fetch_optional(pool).await
            }
            Executor::PostgresPool(pool) => {
                sqlx::query_as_with(sql, arguments::<Postgres>(&values)?).fetch_optional(pool).await
            }
            Executor::SqliteTx(conn) => {
                sqlx::query_as_with(sql, arguments::<Sqlite>(&values)?).fetch_optional(conn).await
            }
            Executor::PostgresTx(conn) => {
                sqlx::query_as_with(sql, arguments::<Postgres>(&values)?).fetch_optional(conn).await
            }
        }
    }

    /// Exactly one row; none is `sqlx::Error::RowNotFound`.
    pub(crate) async fn fetch_one<'c, T: Row>(self, on: impl Into<Executor<'c>>) -> sqlx::Result<T> {
        self.fetch_optional(on).await?.ok_or(sqlx::Error::RowNotFound)
    }
}

/// The values encoded for backend `DB`, in the Rust types `sqlx` maps to
/// the schema's columns on both backends.
fn arguments<DB>(values: &[Value<'_>]) -> sqlx::Result<DB::Arguments>
where
    DB: Database,
    for<'t> Option<Uuid>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
    for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
    for<'t> &'t [u8]: Encode<'t, DB> + Type<DB>,
    for<'t> bool: Encode<'t, DB> + Type<DB>,
{
    let mut arguments = DB::Arguments::default();
    for value in values {
        match value {
            Value::Uuid(v) => arguments.add(*v),
            Value::Int(v) => arguments.add(*v),
            Value::Text(v) => arguments.add(*v),
            Value::Bytes(v) => arguments.add(v.as_ref()),
            Value::Bool(v) => arguments.add(*v),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(arguments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::connect(&format!("sqlite://{}", dir.path().join("sql.db").display())).await.unwrap()
    }

    #[tokio::test]
    async fn every_value_type_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let id = Uuid::now_v7();
        type Row = (Option<Uuid>, Option<i64>, Option<String>, Vec<u8>, bool, Option<i64>, Option<String>);
        let row: Row = statement("SELECT $1, $2, $3, $4, $5, $6, $7")
            .bind(id)
            .bind(42_i64)
            .bind("text")
            .bind(vec![1_u8, 2])
            .bind(true)
            .bind(None::<i64>)
            .bind(None::<&str>)
            .fetch_one(&store)
            .await
            .unwrap();
        assert_eq!(row, (Some(id), Some(42), Some("text".to_owned()), vec![1, 2], true, None, None));
    }

    #[tokio::test]
    async fn a_transaction_writes_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let insert = |id: Uuid| {
            statement("INSERT INTO tenants (id, name, created_at, updated_at) VALUES ($1, 'T', 0, 0)").bind(id)
        };
        let count = || statement("SELECT COUNT(*) FROM tenants");
        let (dropped, committed) = (Uuid::now_v7(), Uuid::now_v7());

        let mut tx = store.begin().await.unwrap();
        assert_eq!(insert(dropped).execute(&mut tx).await.unwrap(), 1);
        drop(tx);
        let (tenants,): (i64,) = count().fetch_one(&store).await.unwrap();
        assert_eq!(tenants, 0, "a dropped transaction rolls back");

        let mut tx = store.begin().await.unwrap();
        insert(committed).execute(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let ids: Vec<(Uuid,)> = statement("SELECT id FROM tenants").fetch_all(&store).await.unwrap();
        assert_eq!(ids, vec![(committed,)]);
        let none: Option<(Uuid,)> =
            statement("SELECT id FROM tenants WHERE id = $1").bind(dropped).fetch_optional(&store).await.unwrap();
        assert!(none.is_none());
    }
}
