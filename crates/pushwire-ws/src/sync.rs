//! The one poison-tolerant [`lock`] pushwire-ws's mutexes are taken with.
//!
//! A `std::sync::Mutex` is *poisoned* when a thread panics while holding it, and
//! every later `lock()` answers an error. The crate guards only data whose critical
//! sections are a few plain updates (counters, maps, queues) that are consistent
//! after every step, so data behind a poisoned lock is still right: a panic in one
//! connection's task must not take every other connection down with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, using its data as is if a thread panicked while holding it.
///
/// Only for mutexes whose every critical section leaves the data consistent at
/// each point where it could panic (see the module docs).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
