//! A PostgreSQL schema for one test edge, in the database named by `WARREN_TEST_DATABASE_URL`,
//! so API suites run against PostgreSQL too; concurrent tests never see each other's rows.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// Env var naming the PostgreSQL database tests may use.
pub const PG_URL_ENV: &str = "WARREN_TEST_DATABASE_URL";

/// A schema created for one edge; dropped (with everything in it) when this is dropped, after
/// ending every connection the edge still has open to it.
pub struct TestSchema {
    /// The database URL with `search_path` set to the schema.
    pub url: String,
    admin_url: String,
    schema: String,
}

impl TestSchema {
    /// Creates a fresh schema, or `None` when [`PG_URL_ENV`] is unset.
    pub async fn create() -> Option<TestSchema> {
        let admin_url = std::env::var(PG_URL_ENV).ok().filter(|u| !u.is_empty())?;
        let schema = format!("warren_edge_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to WARREN_TEST_DATABASE_URL");
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create the test schema");
        admin.close().await.ok();
        let sep = if admin_url.contains('?') { '&' } else { '?' };
        Some(TestSchema {
            // The application name marks the edge's connections so the drop can end them.
            url: format!("{admin_url}{sep}options[search_path]={schema}&application_name={schema}"),
            admin_url,
            schema,
        })
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (admin_url, schema) = (self.admin_url.clone(), self.schema.clone());
        // Drop runs inside the test's runtime; a helper thread with its own runtime does the IO.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = PgConnection::connect(&admin_url).await.ok()?;
                // The edge's pool may still hold connections — one inside a transaction whose
                // task can no longer run once the test's runtime is blocked here — and
                // DROP SCHEMA would wait for their locks forever: end them first.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&mut admin)
                .await
                .ok()?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut admin)
                    .await
                    .ok()?;
                admin.close().await.ok()
            })
        })
        .join();
        if !matches!(done, Ok(Some(()))) {
            eprintln!("warning: could not drop test schema {}", self.schema);
        }
    }
}
