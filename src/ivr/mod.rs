//! The call flow as a state machine: what to say and what to ask next, independent of HTTP and
//! of how it is spoken (TwiML or Media Streams).

pub mod bad_news;
pub mod flow;
pub mod hours;
pub mod order_status;
pub mod returns;
pub mod state;
pub mod texts;
pub mod understanding;
pub mod verification;

pub use flow::{CallContext, CallFlow, Caller, Input, Outcome, Reply, Step, TransferStep};
pub use state::{Ask, CallState, Stage};
pub use texts::{TextOutcome, TextRequest, TextSender, Texts};
