//! The SQL of `store::sessions`, written once and compiled twice: as `sessions::pg` and
//! `sessions::lite` (see `backend!` in src/store/mod.rs). Never calls Shopify or speaks HTTP.

#[allow(unused_imports)]
use super::super::*;
use super::*;

pub(crate) async fn create(conn: &mut Conn, token_hash: &str, now: Ts, expires_at: Ts) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO agent_sessions (token_hash, created_at, expires_at) VALUES ($1, $2, $3)")
        .bind(token_hash)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM agent_sessions WHERE expires_at <= $1").bind(now).execute(&mut *conn).await?;
    Ok(())
}

pub(crate) async fn is_live(conn: &mut Conn, token_hash: &str, now: Ts) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agent_sessions WHERE token_hash = $1 AND expires_at > $2")
        .bind(token_hash)
        .bind(now)
        .fetch_one(&mut *conn)
        .await?;
    Ok(n > 0)
}

pub(crate) async fn end(conn: &mut Conn, token_hash: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM agent_sessions WHERE token_hash = $1").bind(token_hash).execute(&mut *conn).await?;
    Ok(())
}
