//! The [`Store`] handle: connecting to SQLite or PostgreSQL, pool settings, migrations,
//! and the few queries that span tables.
//!
//! SQLite runs in WAL mode with `synchronous = NORMAL`, a busy timeout (writers queue
//! instead of failing with "database is locked") and foreign keys on; the file is created
//! if missing (its directory must exist). `sqlite::memory:` works too, on one connection
//! kept open for the store's lifetime.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;

/// How long a SQLite writer waits for the write lock before failing.
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections in a SQLite file pool (readers run concurrently under WAL).
pub const SQLITE_MAX_CONNECTIONS: u32 = 8;
/// Connections in a PostgreSQL pool, per node.
pub const POSTGRES_MAX_CONNECTIONS: u32 = 16;
/// How long an operation waits for a free pooled connection.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A SQLite file (or in-memory database): the single-node default.
    Sqlite,
    /// PostgreSQL: shared by several nodes.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        })
    }
}

/// The pool behind a [`Store`]; one variant per backend (see the `with_pool!` macro).
#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Warren's persistence facade. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: Pool,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `url` and applies any pending migrations.
    ///
    /// `sqlite://path` (relative), `sqlite:///abs/path`, `sqlite::memory:`, or
    /// `postgres://…` / `postgresql://…` (libpq-style parameters such as
    /// `options[search_path]=schema` are honoured).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = match scheme(url) {
            "sqlite" => Pool::Sqlite(connect_sqlite(url).await?),
            "postgres" | "postgresql" => Pool::Postgres(connect_postgres(url).await?),
            other => {
                return Err(StoreError::UnsupportedUrl {
                    scheme: other.to_string(),
                });
            }
        };
        let store = Store { pool };
        store.migrate().await?;
        tracing::debug!(backend = %store.backend(), "store connected and migrated");
        Ok(store)
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Whether the store holds no credentials and no API keys (first start: the server
    /// then mints an admin API key and a first authtoken).
    pub async fn is_empty(&self) -> Result<bool, StoreError> {
        for sql in [
            "SELECT id FROM credentials LIMIT 1",
            "SELECT id FROM api_keys LIMIT 1",
        ] {
            let found: Option<String> = with_pool!(self, |pool| {
                sqlx::query_scalar(sql).fetch_optional(pool).await?
            });
            if found.is_some() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Closes every pooled connection and waits for them to finish. Later calls on this
    /// store (or its clones) fail.
    pub async fn close(&self) {
        with_pool!(self, |pool| pool.close().await)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await?,
            Pool::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await?,
        }
        Ok(())
    }
}

/// The URL's scheme (text before the first `:`), or the empty string.
fn scheme(url: &str) -> &str {
    url.split_once(':').map_or("", |(scheme, _)| scheme)
}

async fn connect_sqlite(url: &str) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .foreign_keys(true);
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let pool_options = if in_memory {
        // An in-memory database lives as long as one connection to it: keep exactly one.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        SqlitePoolOptions::new().max_connections(SQLITE_MAX_CONNECTIONS)
    };
    Ok(pool_options
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?)
}

async fn connect_postgres(url: &str) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(url)?;
    Ok(PgPoolOptions::new()
        .max_connections(POSTGRES_MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?)
}
