//! The SQL of `store::notifications`, written once and compiled twice: as `notifications::pg` and
//! `notifications::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn queue(conn: &mut Conn, call_sid: &str, kind: &str, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications (call_sid, kind, next_attempt_at, created_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (call_sid, kind) DO NOTHING",
    )
    .bind(call_sid)
    .bind(kind)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn claim(
    conn: &mut Conn,
    now: Ts,
    lease: Ts,
    limit: i64,
) -> Result<Vec<DueNotification>, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let lock = if BACKEND == crate::store::Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let due: Vec<DueNotification> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT call_sid, kind, attempts FROM notifications
         WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $1
         ORDER BY next_attempt_at LIMIT $2{lock}"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    for n in &due {
        sqlx::query("UPDATE notifications SET next_attempt_at = $3 WHERE call_sid = $1 AND kind = $2")
            .bind(&n.call_sid)
            .bind(&n.kind)
            .bind(lease)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(due)
}

pub(crate) async fn delivered(conn: &mut Conn, call_sid: &str, kind: &str, now: Ts) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET delivered_at = $3, attempts = attempts + 1, last_error = NULL
         WHERE call_sid = $1 AND kind = $2",
    )
    .bind(call_sid)
    .bind(kind)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn failed(
    conn: &mut Conn,
    call_sid: &str,
    kind: &str,
    error: &str,
    retry_at: Option<Ts>,
    now: Ts,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications SET attempts = attempts + 1, last_error = $3,
                next_attempt_at = COALESCE($4, next_attempt_at),
                dead_at = CASE WHEN $4 IS NULL THEN $5 ELSE NULL END
         WHERE call_sid = $1 AND kind = $2",
    )
    .bind(call_sid)
    .bind(kind)
    .bind(error)
    .bind(retry_at)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn state(
    conn: &mut Conn,
    call_sid: &str,
    kind: &str,
) -> Result<Option<NotificationState>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempts, delivered_at, dead_at, last_error FROM notifications WHERE call_sid = $1 AND kind = $2",
    )
    .bind(call_sid)
    .bind(kind)
    .fetch_optional(&mut *conn)
    .await
}
