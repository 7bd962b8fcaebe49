//! Texts sent during calls (the tracking link, key 4; the return label, key 6): one row per
//! call, order and kind (`domain::TextKind`), claimed
//! before Twilio is asked so a second press sends nothing, then Twilio's answer and its status
//! callbacks.

use super::{Pool, Store, StoreError, Ts, backend, on_backend};
use crate::domain::TextKind;

/// A text about to be asked of Twilio.
#[derive(Debug, Clone)]
pub struct NewSms {
    pub call_sid: String,
    pub order_id: i64,
    pub kind: TextKind,
    pub shop: String,
    pub customer_id: Option<i64>,
    /// E.164.
    pub to_number: String,
    pub from_number: Option<String>,
}

/// A text as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SmsRow {
    pub call_sid: String,
    pub order_id: i64,
    /// `TextKind`'s stored name.
    pub kind: String,
    pub to_number: String,
    pub message_sid: Option<String>,
    pub status: String,
    pub error_code: Option<i32>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// Twilio's final message statuses: a later callback with an earlier status does not undo them
/// (callbacks may arrive out of order).
const FINAL: [&str; 5] = ["delivered", "undelivered", "failed", "read", "canceled"];

/// The status stored before Twilio has answered.
pub const REQUESTED: &str = "requested";

impl Store {
    /// Claims the text for this call and order: `None` when claimed now (send it), else the row
    /// an earlier press left (send nothing).
    pub async fn claim_sms(&self, sms: &NewSms, now: Ts) -> Result<Option<SmsRow>, StoreError> {
        Ok(on_backend!(self, claim(sms, now))?)
    }

    /// Twilio accepted the text: its SID and status.
    pub async fn sms_accepted(&self, sms: &NewSms, message_sid: &str, status: &str, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, accepted(sms, message_sid, status, now))?)
    }

    /// Twilio refused the text or never answered: failed, with Twilio's error code if it gave one.
    pub async fn sms_failed(&self, sms: &NewSms, error_code: Option<i32>, now: Ts) -> Result<(), StoreError> {
        Ok(on_backend!(self, failed(sms, error_code, now))?)
    }

    /// A status callback: `false` when no text has this SID (nothing is written).
    pub async fn sms_status(
        &self,
        message_sid: &str,
        status: &str,
        error_code: Option<i32>,
        now: Ts,
    ) -> Result<Option<SmsRow>, StoreError> {
        Ok(on_backend!(self, status(message_sid, status, error_code, now))?)
    }

    /// The texts of a call, oldest first.
    pub async fn sms_of_call(&self, call_sid: &str) -> Result<Vec<SmsRow>, StoreError> {
        Ok(on_backend!(self, of_call(call_sid))?)
    }
}

// The SQL, in sms/sql.rs, compiled once per backend (hence clippy's duplicate_mod allowed).
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "sms"]
pub(crate) mod pg {
    super::backend!(Postgres);
    mod sql; // src/store/sms/sql.rs
    pub(crate) use sql::*;
}

#[allow(dead_code, clippy::duplicate_mod)]
#[path = "sms"]
pub(crate) mod lite {
    super::backend!(Sqlite);
    mod sql; // src/store/sms/sql.rs
    pub(crate) use sql::*;
}
