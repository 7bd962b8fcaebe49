//! The SQL of `store::attempts`, written once and compiled twice: as `attempts::pg` and
//! `attempts::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn record(
    conn: &mut Conn,
    kind: &str,
    digests: &[String],
    at: Ts,
    forget_before: Ts,
) -> Result<(), sqlx::Error> {
    for subject in digests {
        sqlx::query("INSERT INTO failed_attempts (kind, subject, at) VALUES ($1, $2, $3)")
            .bind(kind)
            .bind(subject)
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("DELETE FROM failed_attempts WHERE kind = $1 AND at < $2")
        .bind(kind)
        .bind(forget_before)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(crate) async fn count(conn: &mut Conn, kind: &str, subject: &str, since: Ts) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM failed_attempts WHERE kind = $1 AND subject = $2 AND at >= $3")
        .bind(kind)
        .bind(subject)
        .bind(since)
        .fetch_one(&mut *conn)
        .await
}
