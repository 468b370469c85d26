//! A PostgreSQL schema of one test's own in the database of
//! `TEST_DATABASE_URL`, dropped when the value is dropped, so runs never
//! collide. Shared by auth-core's and the root package's test harnesses
//! (each includes this file with `#[path]`).

use uuid::Uuid;

pub struct PgSchema {
    /// `TEST_DATABASE_URL` with `search_path` set to the schema.
    pub url: String,
    base_url: String,
    name: String,
}

impl PgSchema {
    /// Creates `<prefix>_<random>`; panics with instructions without `TEST_DATABASE_URL`.
    pub async fn create(prefix: &str) -> Self {
        let base_url = std::env::var("TEST_DATABASE_URL")
            .expect("PostgreSQL tests need TEST_DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test");
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&base_url).await.expect("connect to TEST_DATABASE_URL");
        let create = format!("CREATE SCHEMA {name}");
        sqlx::query(sqlx::AssertSqlSafe(create)).execute(&admin).await.expect("create the test schema");
        admin.close().await;
        let separator = if base_url.contains('?') { '&' } else { '?' };
        let url = format!("{base_url}{separator}options=-c%20search_path%3D{name}");
        Self { url, base_url, name }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base_url, name) = (self.base_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime: clean up from a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let admin = sqlx::PgPool::connect(&base_url).await.map_err(std::io::Error::other)?;
                let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await.map_err(std::io::Error::other)?;
                admin.close().await;
                Ok::<_, std::io::Error>(())
            })
        });
        if let Ok(Err(error)) = cleanup.join() {
            eprintln!("could not drop test schema: {error}");
        }
    }
}
