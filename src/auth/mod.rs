//! Who may do what: connection tokens, subscription tokens and public topics.
//!
//! # The model
//!
//! Without a key configured, pushwire trusts everyone who can reach it: anyone may
//! subscribe, publish and ask for presence (the publish API has its own API key).
//! Configure a key (`--token-secret`, `--token-public-key`, `--token-jwks`) and
//! every client must show a **token**: a JWT signed by your application's backend,
//! which knows who the user is and what they may see. pushwire never sees
//! passwords or sessions; it only checks signatures and reads claims.
//!
//! A **connection token** says who the client is and what it may do:
//!
//! ```json
//! {"sub": "alice", "exp": 1767225600,
//!  "topics": {"news": ["sub"], "chat:*": ["sub", "pub", "presence"]}}
//! ```
//!
//! - `sub` is the user id, shown as `user` in presence;
//! - `exp` is required: a token always ends. Over `/ws` the client sends a fresh
//!   one (`auth` again) before it does; otherwise the server closes the socket
//!   with code 3000 at expiry. SSE streams end at expiry, and the client
//!   reconnects with a new token;
//! - `topics` maps a **pattern** to permissions (`sub`, `pub`, `presence`). A
//!   pattern is an exact topic name, or a prefix ending in `*` (`chat:*` matches
//!   `chat:lobby`, not `chatter`; `*` alone matches every topic).
//!
//! A **subscription token** grants `sub` and `presence` on one topic to one
//! user: `{"sub": "alice", "topic": "chat:room-42", "exp": …}`, passed in the
//! `sub` request (`?sub_token=` over SSE and long-poll). It lets a backend decide
//! per topic without listing every topic in the connection token. It holds the
//! subscription until it expires: then the subscription ends (an `unsub` push,
//! code 401) unless the client sent a fresh one in time (`sub` again; the
//! subscription keeps its position). Likewise a connection-token refresh ends the
//! subscriptions the new token no longer allows (code 403).
//!
//! **Public topics** (`--public-topic PATTERN`) may be subscribed to by anyone,
//! with or without a token; publishing on them still needs the permission.
//!
//! # Keys and algorithms
//!
//! Every key is bound to one algorithm: a shared secret to HS256, an RSA public key
//! to RS256, a P-256 public key to ES256. A token is verified only by a key of the
//! algorithm its header names, so `alg: none` and *key confusion* (an HS256 token
//! signed with an RSA public key used as the secret) fail. With several keys the
//! header's `kid` picks among them (keys without a `kid` are tried when none has
//! it). `aud` and `iss` are checked when configured; `nbf` is honoured; `exp` and
//! `nbf` allow the configured clock skew (`--token-leeway`).
//!
//! A PEM file given as a public key must hold a `PUBLIC KEY` (or `RSA PUBLIC
//! KEY`) of RSA, 2048 to 8192 bits, or EC P-256: a private key, a certificate, a
//! P-384 or Ed25519 key is refused when the server starts, with a reason naming
//! what the file holds. Signatures are made and checked by *ring* (the library
//! rustls uses), through a `jsonwebtoken` crypto provider of our own: neither of
//! that crate's backends is compiled in (see `docs/security.md` for why).
//!
//! # Files
//!
//! `config.rs` holds the settings; `keys.rs` reads key files (with `der.rs`);
//! `claims.rs` the claims; `policy.rs` permissions, patterns and what a verified
//! token grants; `verify.rs` the verifier; `sign.rs` signing (`pushwire token`);
//! `ring_crypto.rs` the signature primitives.

mod claims;
mod config;
mod der;
mod keys;
mod policy;
mod ring_crypto;
mod secret;
mod sign;
mod verify;

pub use claims::Claims;
pub use config::{AUTH_TIMEOUT, AuthConfig, AuthConfigError, DEFAULT_LEEWAY};
pub(crate) use keys::{Key, read_jwks, read_pem};
pub use policy::{Identity, Pattern, Permission, SubscriptionGrant, forbidden};
pub(crate) use ring_crypto::install as install_crypto;
pub(crate) use secret::same_secret;
pub use sign::{SignError, SigningKey, sign};
pub use verify::{TokenError, TokenVerifier};

pub use crate::clock::{unix_secs as now, until_secs as until};

/// The WebSocket close code for an expired or missing authentication (IANA's
/// "Unauthorized").
pub const CLOSE_UNAUTHORIZED: u16 = 3000;

/// The close reason when a token expired without a refresh.
pub const TOKEN_EXPIRED: &str = "token expired";

/// The close reason when a client did not authenticate in time.
pub const AUTH_TIMED_OUT: &str = "authentication timed out";
