//! The one place SQL lives: customers, orders, phones, webhook deliveries, calls, watermarks,
//! on Postgres (production) and SQLite (embedded default). Never calls Shopify or speaks HTTP.
//!
//! Each store file's SQL is written once, in `<file>/sql.rs` (e.g. `watermarks/sql.rs`), an
//! ordinary file that rustfmt formats. The store file includes it twice, as `pg` over
//! `PgConnection` and as `lite` over `SqliteConnection` (`backend!` declares what differs), so
//! both stay `<file>::pg::…` and `<file>::lite::…`. `Store` picks one per call (`on_backend!`).

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

mod attempts;
mod backfills;
mod callbacks;
mod callers;
mod calls;
mod changes;
mod copy_out;
mod deliveries;
mod handoffs;
mod notifications;
mod order_names;
mod pending;
mod queries;
mod records;
mod reports;
mod returns;
mod sessions;
mod sms;
mod statistics;
mod stored_ids;
mod time;
mod voicemails;
mod watermarks;
mod write;

pub use attempts::AttemptKind;
pub use backfills::BulkProgress;
pub use callbacks::{CallbackRow, NewCallback, status as callback_status};
pub use callers::{
    CallerParts, CallerSink, CustomerView, FulfillmentView, OrderParts, OrderView, RefundView, ReturnView,
};
pub use calls::{CallEvent, CallEventRow, CallRow, CallWrite, NewCall, WriterConnection, is_final as is_final_status};
pub use changes::{CallChange, CallChanges, PhoneChanges};
pub use deliveries::{DeadLetter, DeliveryRow, DeliveryStatus, Lane, NewDelivery, ProcessedDelivery, ReadDelivery};
pub use handoffs::Handoff;
pub use notifications::{DueNotification, NotificationState};
pub use order_names::NameFormat;
pub use pending::{PendingNotice, PendingSubjects};
pub use queries::{CustomerRow, FulfillmentRow, OrderRow, PhoneRow, RefundRow};
pub use records::{ApplyOutcome, Provenance, UNCONFIRMED};
pub use reports::{Purged, ReportCounts};
pub use returns::ReturnRow;
pub use sms::{NewSms, SmsRow};
pub use time::Ts;
pub use voicemails::{MIN_SECONDS as VOICEMAIL_MIN_SECONDS, NewVoicemail, VoicemailRow};
pub use write::{
    AddressWrite, Change, CustomerWrite, FulfillmentEventWrite, FulfillmentWrite, LineItemWrite, OrderWrite,
    RefundWrite, ReturnLabelWrite, ReturnWrite,
};

static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");
static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");

/// Which SQL dialect a generated backend module speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported DATABASE_URL {0:?}: use postgres://… or sqlite://path")]
    UnsupportedUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// True when trying again later may succeed (connection lost, pool exhausted, lock
    /// contention, serialization failure); false when the statement itself was refused.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(e) => is_transient(e),
            _ => false,
        }
    }
}

pub(crate) fn is_transient(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // Postgres: serialization failure, deadlock, admin shutdown, cannot connect now.
            // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6) and their extended codes.
            matches!(code.as_ref(), "40001" | "40P01" | "57P01" | "57P03")
                || code.parse::<i32>().map(|c| matches!(c & 0xff, 5 | 6)).unwrap_or(false)
        }
        sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::Encode(_)
        | sqlx::Error::Configuration(_)
        | sqlx::Error::InvalidArgument(_) => false,
        _ => true,
    }
}

#[derive(Debug, Clone)]
enum Pool {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// The store: a connection pool on one of the two backends, and its change notices.
#[derive(Debug, Clone)]
pub struct Store {
    pool: Pool,
    changes: tokio::sync::broadcast::Sender<PhoneChanges>,
    calls: tokio::sync::broadcast::Sender<CallChanges>,
    listening: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// True while the LISTEN connection is up (Postgres, once subscribed).
    listener_up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Customers and orders with a delivery acknowledged and not yet applied (a hint).
    pending: std::sync::Arc<PendingSubjects>,
    /// A change notice could not be sent after its commit: the next one starts with `all`.
    notices_owed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Records written, for refreshing the planner's statistics (`statistics`).
    statistics: std::sync::Arc<statistics::Statistics>,
}

impl Store {
    fn new(pool: Pool) -> Store {
        let (changes, _) = tokio::sync::broadcast::channel(1024);
        let (calls, _) = tokio::sync::broadcast::channel(4096);
        Store {
            pool,
            changes,
            calls,
            listening: Default::default(),
            listener_up: Default::default(),
            pending: Default::default(),
            notices_owed: Default::default(),
            statistics: Default::default(),
        }
    }
}

/// Declares, inside a store file's `pg` or `lite` module, what its SQL file (`<file>/sql.rs`)
/// reads from `super::`: `Conn`, the backend's connection type; `BACKEND`, which one it is; and
/// `apply_path`, the same backend's apply path (`records`), for writers that must join it.
macro_rules! backend {
    (Postgres) => {
        pub(crate) type Conn = sqlx::PgConnection;
        pub(crate) const BACKEND: $crate::store::Backend = $crate::store::Backend::Postgres;
        #[allow(unused_imports)]
        use $crate::store::records::pg as apply_path;
    };
    (Sqlite) => {
        pub(crate) type Conn = sqlx::SqliteConnection;
        pub(crate) const BACKEND: $crate::store::Backend = $crate::store::Backend::Sqlite;
        #[allow(unused_imports)]
        use $crate::store::records::lite as apply_path;
    };
}
pub(crate) use backend;

/// A connection from `pool`. Boxed: sqlx's acquire future is about 14 KB (its wait, timeout and
/// connect states), and every async fn awaiting a store call carried it inline, so each call's
/// future was copied around at that size (an incoming call's flow was 17 KB, moved into its box
/// with one 17 KB memcpy: issue 14, callgrind and the binary's DWARF sizes).
pub(crate) async fn pooled<DB: sqlx::Database>(
    pool: &sqlx::Pool<DB>,
) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
    Box::pin(pool.acquire()).await
}

/// Calls `[module::]{pg|lite}::function(conn, args…)` on a pooled connection of the store's backend.
macro_rules! on_backend {
    ($store:expr, $func:ident ( $($arg:expr),* $(,)? )) => {
        match &$store.pool {
            Pool::Postgres(pool) => {
                let mut conn = $crate::store::pooled(pool).await?;
                pg::$func(&mut conn, $($arg),*).await
            }
            Pool::Sqlite(pool) => {
                let mut conn = $crate::store::pooled(pool).await?;
                lite::$func(&mut conn, $($arg),*).await
            }
        }
    };
    ($store:expr, $module:ident :: $func:ident ( $($arg:expr),* $(,)? )) => {
        match &$store.pool {
            Pool::Postgres(pool) => {
                let mut conn = $crate::store::pooled(pool).await?;
                $module::pg::$func(&mut conn, $($arg),*).await
            }
            Pool::Sqlite(pool) => {
                let mut conn = $crate::store::pooled(pool).await?;
                $module::lite::$func(&mut conn, $($arg),*).await
            }
        }
    };
}
pub(crate) use on_backend;

/// How long a pooled Postgres connection may sit idle and still be used without a ping.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(5);

impl Store {
    /// Opens a pool for `postgres://…` or `sqlite://path` (created if missing; `sqlite::memory:`).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with(url, 16).await
    }

    /// As `connect`, with at most `max_connections` to Postgres.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let mut options = PgConnectOptions::from_str(url)?;
            // TLS over loopback protects nothing and costs every byte twice: unless the URL
            // asks for it, a local server is spoken to in the clear.
            if !url.contains("sslmode=") && matches!(options.get_host(), "localhost" | "127.0.0.1" | "::1") {
                options = options.ssl_mode(PgSslMode::Disable);
            }
            // sqlx pings a connection as it goes back to the pool and, by default, again as it
            // comes out: two round trips around every store call. A connection that was busy
            // moments ago was checked as it came back, so only one idle for a while (in which
            // Postgres may have gone away) is pinged before use (sqlx's own recipe,
            // `PoolOptions::before_acquire`; issue 14).
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .min_connections(1)
                .acquire_timeout(Duration::from_secs(5))
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for > IDLE_BEFORE_PING {
                            sqlx::Connection::ping(conn).await?;
                        }
                        Ok(true)
                    })
                })
                .connect_with(options)
                .await?;
            Ok(Store::new(Pool::Postgres(pool)))
        } else if url.starts_with("sqlite:") {
            // Durable (FULL sync in WAL) and one connection: SQLite has one writer anyway, and a
            // single connection cannot deadlock against itself. A 64 MiB page cache (SQLite's
            // default is 2 MiB): a big shop's indexes outgrow the default early in a backfill,
            // and every insert then reads its B-tree pages back from the file (issue 14). The
            // cache fills only as pages are read.
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .pragma("cache_size", "-65536")
                .busy_timeout(Duration::from_secs(5));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Ok(Store::new(Pool::Sqlite(pool)))
        } else {
            Err(StoreError::UnsupportedUrl(url.to_string()))
        }
    }

    /// How many connections the store may hold at once (SQLite: one).
    pub fn max_connections(&self) -> u32 {
        match &self.pool {
            Pool::Postgres(pool) => pool.options().get_max_connections(),
            Pool::Sqlite(_) => 1,
        }
    }

    /// How many writers may write at once, each in its own transaction (the bulk backfill's
    /// and the webhook processor's lanes): half the Postgres pool (the other half stays for
    /// intake and calls), at most 8; SQLite has one writer.
    pub fn write_lanes(&self) -> u32 {
        (self.max_connections() / 2).clamp(1, 8)
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Postgres(_) => Backend::Postgres,
            Pool::Sqlite(_) => Backend::Sqlite,
        }
    }

    fn migrator(&self) -> &'static Migrator {
        match self.pool {
            Pool::Postgres(_) => &POSTGRES_MIGRATIONS,
            Pool::Sqlite(_) => &SQLITE_MIGRATIONS,
        }
    }

    /// Applies the migrations this build carries that the database lacks.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => self.migrator().run(pool).await?,
            Pool::Sqlite(pool) => self.migrator().run(pool).await?,
        }
        Ok(())
    }

    /// Ready means: the database answers, every migration this build knows is applied, and (on
    /// Postgres, once caches follow changes) the LISTEN connection is up.
    pub async fn readiness(&self) -> Result<(), String> {
        let expected = self.migrator().iter().filter(|m| m.migration_type.is_up_migration()).count() as i64;
        let applied = self.count_applied_migrations().await.map_err(|e| format!("database unreachable: {e}"))?;
        if applied < expected {
            return Err(format!("{applied} of {expected} migrations applied: run `orderline migrate`"));
        }
        if self.listening.load(std::sync::atomic::Ordering::SeqCst)
            && !self.listener_up.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err("not yet listening for other instances' changes (LISTEN orderline_changes)".into());
        }
        Ok(())
    }

    async fn count_applied_migrations(&self) -> Result<i64, sqlx::Error> {
        on_backend!(self, queries::count_applied_migrations())
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(pool) => pool.close().await,
            Pool::Sqlite(pool) => pool.close().await,
        }
    }
}
