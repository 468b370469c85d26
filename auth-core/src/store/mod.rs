//! Storage on SQLite or PostgreSQL, chosen by the URL scheme: data access
//! only. What the platform may do (refresh reuse and its grace window, the
//! membership rules, what a password change ends, when accounts are linked)
//! is decided in the service (`crate::service`); the store reads and writes.
//!
//! One SQL text for both backends: every statement is written once, with `$n`
//! placeholders and portable SQL, as a `sql::Statement` (the text and its
//! bound values), and run by a `sql::Executor` on the pool or in an open
//! [`Transaction`]. That layer (`sql.rs`) is the only code that tells SQLite
//! from PostgreSQL, so every helper here is a plain function, and a statement
//! used in several places (revoking a user's sessions, say) is built by one
//! function. Ids are UUIDs and times are Unix milliseconds on both backends,
//! so comparisons behave identically. Each backend has its own embedded
//! migrations (only the column types differ), run by [`Store::connect`].
//!
//! Methods of [`Store`] are single statements on the pool; methods of
//! [`Transaction`] are single statements in a transaction the service began
//! with [`Store::begin`] and commits once the statements that must hold
//! together have run; dropped, it rolls back.
//! On SQLite a transaction (and a write on the pool) first waits for its turn
//! on the process's write gate, a FIFO queue, and begins `IMMEDIATE`, so
//! writers queue instead of failing when two read-then-write transactions
//! meet, and none sleeps in SQLite's busy handler; on
//! PostgreSQL the first conditional `UPDATE` of a transaction takes the row
//! lock that serialises competitors (see `Sessions::rotate_refresh`), so callers
//! keep that statement first.
//!
//! A lost unique race is [`Inserted::Duplicate`], not an error: the service
//! decides what the client is told (and must then drop the transaction).

mod audit;
mod devices;
mod identity_links;
mod invitations;
mod mfa;
mod one_time;
mod passkeys;
mod sessions;
mod sql;
mod tenants;
mod users;
mod webhooks;

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

pub use audit::AuditRecord;
pub(crate) use devices::Seen;
pub use identity_links::IdentityLink;
pub(crate) use mfa::PendingMfaLogin;
pub use one_time::OneTimePurpose;
pub use passkeys::StoredPasskey;
pub use sessions::{Family, NewFamily, Session};
pub(crate) use sessions::{LiveSession, StoredToken};
pub use sql::Transaction;
pub(crate) use webhooks::Attempt;
pub use webhooks::{StoredDelivery, StoredEndpoint};

use sql::{Backend, WriteGate, statement};

use crate::error::{AuthError, Result};

/// How long a request waits for a pooled connection before the store is
/// reported unavailable (503) rather than hanging.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The platform's storage. Cheap to clone (a pool handle).
#[derive(Clone, Debug)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Connects to `sqlite://…` or `postgres://…` and runs the embedded migrations.
    /// An unreachable database is [`AuthError::Unavailable`].
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(AuthError::internal)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(ACQUIRE_TIMEOUT);
            // No ping before each acquire: a connection to a local file does
            // not go stale, and the ping is a round trip to its worker thread
            // (the rotation floor: 566 → 1383/s at 1 connection with it off).
            let pool = SqlitePoolOptions::new()
                .test_before_acquire(false)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options.clone())
                .await?;
            sqlx::migrate!("./migrations/sqlite").run(&pool).await.map_err(migration_error)?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .idle_timeout(None)
                .max_lifetime(None)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await?;
            Backend::Sqlite(pool, WriteGate::new(writer, ACQUIRE_TIMEOUT))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url).map_err(AuthError::internal)?;
            let pool = PgPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT).connect_with(options).await?;
            sqlx::migrate!("./migrations/postgres").run(&pool).await.map_err(migration_error)?;
            Backend::Postgres(pool)
        } else {
            return Err(AuthError::internal("database_url must start with sqlite:// or postgres://"));
        };
        Ok(Self { backend })
    }

    /// Closes every connection; later calls fail with [`AuthError::Unavailable`]
    /// (the suites' database outage).
    #[cfg(any(test, feature = "testing"))]
    pub async fn close(&self) {
        self.backend.close().await
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Begins a transaction for statements that must hold together (see the module docs).
    pub async fn begin(&self) -> Result<Transaction> {
        Ok(self.backend.begin().await?)
    }
}

fn migration_error(error: sqlx::migrate::MigrateError) -> AuthError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
        other => AuthError::internal(other),
    }
}

/// Whether `error` is a violated unique constraint.
fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// What an `INSERT` into a table with a unique key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Inserted {
    New,
    /// The key was taken (possibly by a concurrent transaction). Nothing was
    /// written, and on PostgreSQL the transaction can only be rolled back.
    Duplicate,
}

fn inserted(result: sqlx::Result<u64>) -> Result<Inserted> {
    match result {
        Ok(_) => Ok(Inserted::New),
        Err(error) if is_unique_violation(&error) => Ok(Inserted::Duplicate),
        Err(error) => Err(error.into()),
    }
}

pub(crate) fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

pub(crate) fn time(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::UNIX_EPOCH)
}
