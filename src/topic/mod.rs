//! The vocabulary every layer above speaks: what a topic is called ([`Topic`]), where
//! its stream stands ([`Epoch`], [`Position`], [`Positions`]), what is published
//! ([`Data`]), who is present ([`Member`]), what is delivered ([`Push`]), how much
//! history is kept ([`HistoryConfig`]), and what a refused request is answered
//! ([`ErrorCode`], [`ErrorReply`]).
//!
//! It sits beneath the broker and the hub (as a publication and a stream position
//! sit beside a broker interface, beneath both the node and its Redis broker) and
//! knows no wire format: the protocols (`crate::protocol`, the SSE and long-poll
//! transports) encode these types, each in its own way.
//!
//! Files by job: `name.rs` (topic names and epochs), `position.rs`, `data.rs`,
//! `member.rs`, `push.rs`, `history.rs`, `error.rs`.

mod data;
mod error;
mod history;
mod member;
mod name;
mod position;
mod push;

pub use data::{Data, InvalidJson, MAX_DEPTH};
pub use error::{ErrorCode, ErrorReply};
pub use history::HistoryConfig;
pub use member::Member;
pub use name::{Epoch, MAX_EPOCH_LEN, MAX_TOPIC_LEN, NameError, SYSTEM_PREFIX, Topic};
pub use position::{Position, Positions};
pub use push::{Push, PushKind};
