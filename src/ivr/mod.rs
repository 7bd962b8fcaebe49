//! The call flow as a state machine: what to say and what to ask next, independent of HTTP and
//! of how it is spoken (TwiML or Media Streams).

pub mod hours;
