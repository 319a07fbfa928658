//! The helpers of `tests/it/common` for `tests/ws_layer.rs` and `tests/ws_protocol.rs`,
//! which still compile them on their own until they move to the `pushwire-ws` crate's
//! tests; delete this file then.
//!
//! Each of those two binaries uses a part of the helpers, hence the allow here and
//! nowhere else: in `tests/it`, where every helper is used, the lint stays on.

#![allow(dead_code)]

#[path = "../it/common/mod.rs"]
mod shared;

pub use shared::*;
