//! Postgres access: the database is created if missing, each service gets its
//! own schema (so sqlx's `_sqlx_migrations` table, too) and runs its own
//! migrations in it. No service can see another's tables by accident: its
//! connections' `search_path` is its schema alone.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, Migrator};
use sqlx::pool::MaybePoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::Settings;

fn options(url: &str) -> anyhow::Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).context("DATABASE_URL is not a Postgres URL")
}

/// The database `url` names, and a connection to the server's `postgres`
/// database from which to create or drop it.
async fn admin(url: &str) -> anyhow::Result<(String, PgConnection)> {
    let options = options(url)?;
    let name = options
        .get_database()
        .context("the URL names no database")?
        .to_owned();
    let admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .with_context(|| format!("cannot reach Postgres at {}", redact(url)))?;
    Ok((name, admin))
}

/// `name` as a quoted SQL identifier.
fn quoted(name: &str) -> String {
    format!(r#""{}""#, name.replace('"', "\"\""))
}

/// Creates the database named in `url` when it does not exist yet.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    let (name, mut admin) = admin(url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let created = sqlx::query(&format!("CREATE DATABASE {}", quoted(&name)))
            .execute(&mut admin)
            .await;
        match created {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Several services starting at once race to create it; one wins.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create database {name}")),
        }
    }
    admin.close().await.ok();
    Ok(())
}

/// Drops the database named in `url`, if it exists, closing its connections:
/// a run's or a probe's scratch database, afterwards (or left by one that
/// was interrupted, before).
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let (name, mut admin) = admin(url).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quoted(&name)
    ))
    .execute(&mut admin)
    .await
    .with_context(|| format!("cannot drop database {name}"))?;
    admin.close().await.ok();
    Ok(())
}

/// PostgreSQL's connection slots as seen from `url`: how many it allows this
/// role (`max_connections`, less the slots reserved for superusers unless the
/// role is one) and how many client connections are open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    pub allowed: i64,
    pub open: i64,
}

impl Slots {
    pub fn free(self) -> i64 {
        (self.allowed - self.open).max(0)
    }
}

pub async fn slots(url: &str) -> anyhow::Result<Slots> {
    let options = options(url)?;
    let mut conn = options
        .connect()
        .await
        .with_context(|| format!("cannot reach Postgres at {}", redact(url)))?;
    // `reserved_connections` (PostgreSQL 16) is for roles granted
    // pg_use_reserved_connections; counting it against everyone errs safe.
    let (allowed, open): (i64, i64) = sqlx::query_as(
        "SELECT current_setting('max_connections')::bigint
              - CASE WHEN r.rolsuper THEN 0
                     ELSE current_setting('superuser_reserved_connections')::bigint
                          + COALESCE(current_setting('reserved_connections', true)::bigint, 0)
                END,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend') - 1
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .context("cannot read PostgreSQL's max_connections")?;
    conn.close().await.ok();
    Ok(Slots { allowed, open })
}

/// How long a pooled connection may sit idle before the pool closes it.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A pool whose connections see only `schema`. Connections are opened lazily
/// and closed after [`POOL_IDLE_TIMEOUT`], so an idle service holds none.
pub fn pool(settings: &Settings, schema: &str) -> anyhow::Result<PgPool> {
    let options = options(&settings.database_url)?
        .options([("search_path", schema)])
        // Each statement's time is an event: the phases (crate::phases).
        .log_statements(crate::phases::LEVEL);
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        // Every acquire's wait as an event: the phase `db_pool_wait`.
        .acquire_time_level(crate::phases::LEVEL)
        .min_connections(0)
        .acquire_timeout(settings.db_acquire_timeout)
        .idle_timeout(Some(POOL_IDLE_TIMEOUT))
        // No ping before every checkout: it doubles the round trips of a
        // one-statement request. A broken connection fails its query instead
        // (an error answer) and sqlx drops it from the pool.
        .test_before_acquire(false)
        .connect_lazy_with(options))
}

/// Opens a transaction on `conn` (a pooled connection, or one borrowed) and
/// times its `BEGIN` as the phase `db_begin`: sqlx sends it without an event
/// of its own. (`Transaction::begin` is what `Pool::begin` calls; it is
/// public but hidden from sqlx's docs.)
pub async fn begin<'c>(
    conn: impl Into<MaybePoolConnection<'c, Postgres>>,
) -> crate::Result<Transaction<'c, Postgres>> {
    let start = std::time::Instant::now();
    let tx = Transaction::begin(conn, None).await?;
    crate::phases::record(crate::phases::Phase::DbBegin, start.elapsed());
    Ok(tx)
}

/// Creates `schema` if needed and runs the service's migrations inside it.
/// In async mode the messaging tables (outbox, inbox) are added to each schema.
pub async fn migrate(pool: &PgPool, schema: &str, migrator: &Migrator) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await.context("cannot connect to Postgres")?;
    create_schema(&mut conn, schema).await?;
    let mut migrations: Vec<Migration> = migrator.iter().cloned().collect();
    if cfg!(feature = "async") {
        migrations.extend(MESSAGING.iter().cloned());
    }
    Migrator::new(Migrations(migrations))
        .await?
        .run(&mut *conn)
        .await
        .with_context(|| format!("migrations of schema {schema} failed"))?;
    Ok(())
}

/// Version 1000 and up, so they never collide with a service's own.
static MESSAGING: Migrator = sqlx::migrate!();

#[derive(Debug)]
struct Migrations(Vec<Migration>);

impl MigrationSource<'static> for Migrations {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.0) })
    }
}

async fn create_schema(conn: &mut PgConnection, schema: &str) -> anyhow::Result<()> {
    let sql = format!(
        r#"CREATE SCHEMA IF NOT EXISTS "{}""#,
        schema.replace('"', "\"\"")
    );
    match sqlx::query(&sql).execute(&mut *conn).await {
        Ok(_) => Ok(()),
        // IF NOT EXISTS still races with a concurrent creator of the same schema.
        Err(sqlx::Error::Database(e)) if matches!(e.code().as_deref(), Some("42P06" | "23505")) => {
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create schema {schema}")),
    }
}

/// The database URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod redact_tests {
    use super::redact;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        assert_eq!(
            redact("postgres://lab:s3cret@db:5432/lab_sync"),
            "postgres://lab@db:5432/lab_sync"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/lab_sync"),
            "postgres://postgres@127.0.0.1:5432/lab_sync"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
