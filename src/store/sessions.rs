//! Agents' console sessions: each login's random token, kept only as a keyed hash, with its
//! expiry; logout deletes it. Never makes or checks a token's value (the console does).

use super::{Pool, Store, StoreError, Ts, for_each_backend, on_backend};

impl Store {
    /// Saves a new session (by its token's hash) and removes the expired ones.
    pub async fn create_session(&self, token_hash: &str, now: Ts, expires_at: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, create(token_hash, now, expires_at))?)
    }

    /// True when a session with this hash exists and has not expired at `now`.
    pub async fn session_is_live(&self, token_hash: &str, now: Ts) -> Result<bool, StoreError> {
        Ok(on_backend!(self, is_live(token_hash, now))?)
    }

    /// Ends a session; ending one that does not exist is not an error.
    pub async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
        Ok(on_backend!(self, end(token_hash))?)
    }
}

for_each_backend! {
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
}
