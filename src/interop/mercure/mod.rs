//! A Mercure hub on the [`Hub`](crate::hub::Hub): a browser's own `EventSource`
//! subscribes at `/.well-known/mercure`, a backend publishes with a form POST to
//! the same URL (`docs/interop.md`).
//!
//! # Topics, and the journal
//!
//! A Mercure topic is an IRI; it is the pushwire topic `mercure:<IRI
//! percent-encoded>` ([`topic`]), so `/ws`, SSE, long-poll and Pusher clients
//! subscribe to it like to any topic. An update published through Mercure is kept
//! in that topic as an [`Envelope`](crate::interop::Envelope) (its `type` as the
//! event name, its data as a JSON string, its id, `retry` and alternate topics).
//!
//! A Mercure subscriber selects topics by pattern, so it cannot subscribe to
//! topics one by one. Every Mercure subscriber reads one topic instead, the
//! **journal** ([`MercureConfig::journal`]): the hub appends to it a copy of every
//! message of every `mercure:` topic, whoever published it
//! ([`crate::hub::journal`]), and private updates go to the journal alone. Its
//! offsets order all updates, its history is what `Last-Event-ID` resumes from,
//! and the broker shares it between nodes like any topic. Each subscriber keeps
//! the journal's updates its matchers select and its token may read.
//!
//! # The pieces
//! - [`context`]: what subscribers and publishers share ([`Mercure`]);
//! - [`subscribe`]: `GET`, the subscribers' streams;
//! - [`publish`]: `POST`, the updates;
//! - [`subscriptions`]: active subscriptions, their events and their API;
//! - [`event`]: a journal message as a Mercure update and its Server-Sent Event;
//! - [`form`]: form-encoded queries and bodies;
//! - [`config`]: the hub's settings ([`MercureConfig`]);
//! - [`topic`]: IRIs ↔ pushwire topics;
//! - [`matcher`]: exact, URL Pattern and (0.x) URI Template matchers
//!   (`template.rs` compiles RFC 6570 templates);
//! - [`token`]: access tokens, where they come from and what they grant;
//! - [`error`]: refusals as RFC 6750 errors ([`MercureError`]).

pub mod config;
pub mod context;
pub mod error;
pub mod event;
pub mod form;
pub mod matcher;
pub mod publish;
pub mod subscribe;
pub mod subscriptions;
mod template;
pub mod token;
pub mod topic;

pub use config::{Issuer, KeySpec, MercureConfig};
pub use context::{Mercure, MercureSetupError};
pub use error::MercureError;
pub use event::MercureEvent;
pub use matcher::{MatchType, Matcher};
pub use token::{Grants, MercureAuth};
