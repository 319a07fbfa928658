//! Operations: what people who run pushwire look at.
//!
//! - [`errors`]: the ring of the latest warn and error log events (a `tracing`
//!   layer), shown on the admin page.

pub mod errors;

pub use errors::{ErrorEvent, ErrorLayer, recent_errors};
