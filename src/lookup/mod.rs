//! Caller identification: turning a caller ID into the customers it belongs to, from the cache,
//! the store, or Shopify live. Holds no SQL (that is `store`) and no HTTP of its own.

pub mod caller_id;
pub mod caller_lookup;
pub mod record;

pub use caller_id::CallerId;
pub use caller_lookup::{CallerAnswer, CallerLookup, LookupConfig, LookupError, OrderMatch, Source};
pub use record::{CallerRecord, CustomerCard, FulfillmentCard, OrderCard, RefundSummary, ReturnCard};
