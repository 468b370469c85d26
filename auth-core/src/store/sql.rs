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
use std::sync::Arc;
use std::time::Duration;

use sqlx::{
    Arguments, Database, Encode, FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Type,
    postgres::PgRow, sqlite::SqliteRow,
};
use uuid::Uuid;

/// The store's connection pool, on one backend.
#[derive(Clone, Debug)]
pub(super) enum Backend {
    Sqlite(SqlitePool, WriteGate),
    Postgres(PgPool),
}

/// SQLite's writers of this process, one at a time and first come, first
/// served, on one connection of their own. SQLite admits one writer; one that
/// finds the lock taken sleeps in SQLite's busy handler (1, 2, 5, … up to
/// 100 ms per try) while newcomers can take the lock first, so under load a
/// few writers waited hundreds of milliseconds (refresh p99 337 ms at 32
/// connections, p50 23 ms). Queued on this gate instead, each writer finds
/// the lock free; the busy handler is left for other processes (the
/// operators' CLI). Reads never take it (WAL) and run on the other pool.
///
/// One connection for every write keeps its page cache and its worker
/// thread warm, where writes that moved between the pool's connections
/// re-read the pages the others had changed: the rotation floor at 32
/// connections, 704–1273/s on the shared pool, 1237–1561/s on the writer
/// (BENCHMARKS.md, #17).
#[derive(Clone, Debug)]
pub(super) struct WriteGate {
    turn: Arc<tokio::sync::Mutex<()>>,
    /// A pool of exactly one connection: the writer.
    writer: SqlitePool,
    /// How long a writer waits for its turn before the store is unavailable.
    timeout: Duration,
}

impl WriteGate {
    pub(super) fn new(writer: SqlitePool, timeout: Duration) -> Self {
        Self { turn: Arc::default(), writer, timeout }
    }

    /// This writer's turn (a FIFO queue), or a pool timeout past `timeout`.
    async fn turn(&self) -> sqlx::Result<tokio::sync::OwnedMutexGuard<()>> {
        tokio::time::timeout(self.timeout, Arc::clone(&self.turn).lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)
    }

    /// Where a statement run outside a transaction goes: a read to the
    /// readers' `pool` at once, a write to the writer in its turn.
    async fn route<'p>(
        &'p self,
        pool: &'p SqlitePool,
        sql: &str,
    ) -> sqlx::Result<(&'p SqlitePool, Option<tokio::sync::OwnedMutexGuard<()>>)> {
        let read = sql.trim_start().get(..6).is_some_and(|verb| verb.eq_ignore_ascii_case("SELECT"));
        Ok(if read { (pool, None) } else { (&self.writer, Some(self.turn().await?)) })
    }
}

impl Backend {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Self::Sqlite(..) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    #[cfg(any(test, feature = "testing"))]
    pub(super) async fn close(&self) {
        match self {
            Self::Sqlite(pool, gate) => {
                gate.writer.close().await;
                pool.close().await
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }

    /// On SQLite the transaction takes the [`WriteGate`] and begins
    /// `IMMEDIATE`: writers queue instead of failing when two read-then-write
    /// transactions meet. PostgreSQL serialises on row locks instead.
    pub(super) async fn begin(&self) -> sqlx::Result<Transaction> {
        Ok(match self {
            Self::Sqlite(_, gate) => {
                let turn = gate.turn().await?;
                Transaction(Open::Sqlite(gate.writer.begin_with("BEGIN IMMEDIATE").await?, turn))
            }
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
    /// The transaction, then the writer's turn: fields drop in order, so the
    /// turn passes on after the transaction ended.
    Sqlite(sqlx::Transaction<'static, Sqlite>, tokio::sync::OwnedMutexGuard<()>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Transaction {
    pub async fn commit(self) -> crate::error::Result<()> {
        match self.0 {
            Open::Sqlite(tx, _turn) => tx.commit().await?,
            Open::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}

/// Where a statement runs: the pool (its own implicit transaction) or an
/// open transaction.
pub(crate) enum Executor<'c> {
    SqlitePool(&'c SqlitePool, &'c WriteGate),
    PostgresPool(&'c PgPool),
    SqliteTx(&'c mut SqliteConnection),
    PostgresTx(&'c mut PgConnection),
}

impl<'c> From<&'c super::Store> for Executor<'c> {
    fn from(store: &'c super::Store) -> Self {
        match &store.backend {
            Backend::Sqlite(pool, gate) => Self::SqlitePool(pool, gate),
            Backend::Postgres(pool) => Self::PostgresPool(pool),
        }
    }
}

impl<'c> From<&'c mut Transaction> for Executor<'c> {
    fn from(tx: &'c mut Transaction) -> Self {
        match &mut tx.0 {
            Open::Sqlite(tx, _) => Self::SqliteTx(tx),
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
            Executor::SqlitePool(pool, gate) => {
                let (pool, _turn) = gate.route(pool, sql).await?;
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
            Executor::SqlitePool(pool, gate) => {
                let (pool, _turn) = gate.route(pool, sql).await?;
                sqlx::query_as_with(sql, arguments::<Sqlite>(&values)?).fetch_all(pool).await
            }
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
            Executor::SqlitePool(pool, gate) => {
                let (pool, _turn) = gate.route(pool, sql).await?;
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

    /// Writers of one process take turns on the gate, so none meets SQLite's
    /// lock held: with SQLite's busy handler off (a zero busy timeout, where a
    /// writer finding the lock taken fails at once), 32 concurrent writers,
    /// each holding its transaction open across an await, all succeed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_queue_on_the_gate_not_in_the_busy_handler() {
        use std::str::FromStr;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gate.db").display());
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .busy_timeout(Duration::ZERO);
        let pool =
            sqlx::sqlite::SqlitePoolOptions::new().max_connections(16).connect_with(options.clone()).await.unwrap();
        sqlx::query("CREATE TABLE t (id BLOB PRIMARY KEY)").execute(&pool).await.unwrap();
        let writer = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
        let store = Store { backend: Backend::Sqlite(pool, WriteGate::new(writer, Duration::from_secs(30))) };

        let writers = (0..32).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let insert = || statement("INSERT INTO t (id) VALUES ($1)").bind(Uuid::now_v7());
                let mut tx = store.begin().await.map_err(|error| error.to_string())?;
                insert().execute(&mut tx).await.map_err(|error| error.to_string())?;
                tokio::time::sleep(Duration::from_millis(2)).await;
                tx.commit().await.map_err(|error| error.to_string())?;
                insert().execute(&store).await.map_err(|error| error.to_string())
            })
        });
        for writer in writers.collect::<Vec<_>>() {
            writer.await.unwrap().expect("no writer met the lock held");
        }
        let (rows,): (i64,) = statement("SELECT COUNT(*) FROM t").fetch_one(&store).await.unwrap();
        assert_eq!(rows, 64);
    }
}
