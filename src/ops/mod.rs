//! Operations: what the people who run pushwire read about it. For now the
//! per-connection log lines ([`conn_log`]); see `docs/operations.md`.

pub mod conn_log;
