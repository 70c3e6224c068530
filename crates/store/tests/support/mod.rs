//! A database for one test: a SQLite file in a fresh temp dir, or a fresh schema in the
//! PostgreSQL database named by `WARREN_TEST_DATABASE_URL` (dropped when the test ends),
//! so concurrent tests and concurrent runs never see each other's rows.

use std::path::PathBuf;

use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Column, Connection, Row};
use warren_store::Store;

/// Env var naming a PostgreSQL database to run the PostgreSQL half of the suite against.
pub const PG_URL_ENV: &str = "WARREN_TEST_DATABASE_URL";

pub enum TestDb {
    Sqlite {
        url: String,
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        url: String,
        admin_url: String,
        schema: String,
    },
}

impl TestDb {
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("warren.db");
        TestDb::Sqlite {
            url: format!("sqlite://{}", path.display()),
            path,
            _dir: dir,
        }
    }

    /// `None` (after printing a skip line) when the env var is unset.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(PG_URL_ENV) else {
            eprintln!("skipping postgres::{test}: {PG_URL_ENV} is not set");
            return None;
        };
        let schema = format!("warren_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to WARREN_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create test schema");
        admin.close().await.ok();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        Some(TestDb::Postgres {
            url: format!("{admin_url}{sep}options[search_path]={schema}"),
            admin_url,
            schema,
        })
    }

    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite { url, .. } | TestDb::Postgres { url, .. } => url,
        }
    }

    pub async fn open(&self) -> Store {
        Store::connect(self.url()).await.expect("Store::connect")
    }

    /// Every row of `table`, each column rendered as text and joined with `|`.
    pub async fn dump(&self, table: &str) -> Vec<String> {
        let sql = format!("SELECT * FROM {table} ORDER BY id");
        macro_rules! render {
            ($conn:expr) => {{
                let rows = sqlx::query(&sql).fetch_all(&mut $conn).await.unwrap();
                rows.iter()
                    .map(|row| {
                        (0..row.columns().len())
                            .map(|i| {
                                row.try_get::<Option<String>, _>(i)
                                    .map(|v| v.unwrap_or_default())
                                    .or_else(|_| row.try_get::<i64, _>(i).map(|v| v.to_string()))
                                    .unwrap_or_else(|e| {
                                        panic!("column {}: {e}", row.columns()[i].name())
                                    })
                            })
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect()
            }};
        }
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut conn = SqliteConnection::connect(url).await.unwrap();
                render!(conn)
            }
            TestDb::Postgres { url, .. } => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                render!(conn)
            }
        }
    }

    /// Runs a query returning one BIGINT/INTEGER.
    pub async fn scalar(&self, sql: &str) -> i64 {
        match self {
            TestDb::Sqlite { url, .. } => {
                let mut conn = SqliteConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
            TestDb::Postgres { url, .. } => {
                let mut conn = PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap()
            }
        }
    }

    /// The SQLite file (and its WAL), for byte-level checks.
    pub fn sqlite_path(&self) -> Option<&PathBuf> {
        match self {
            TestDb::Sqlite { path, .. } => Some(path),
            TestDb::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let TestDb::Postgres {
            admin_url, schema, ..
        } = self
        else {
            return;
        };
        let (admin_url, sql) = (
            admin_url.clone(),
            format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        );
        // Drop runs inside the test's runtime; use a thread with its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await?;
                sqlx::query(&sql).execute(&mut admin).await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: could not drop test schema {schema}");
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(&TestDb)`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let db = crate::support::TestDb::sqlite();
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(db) = crate::support::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )*
        }
    };
}
