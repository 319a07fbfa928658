//! Limits on connections, checked when a TCP connection is accepted: how many a node
//! holds, how many one address holds, and how fast one address may open new ones.
//!
//! A refused connection is still answered over HTTP (`503` when the node is full,
//! `429` when one address has too many or opens them too fast), then closed, so a
//! client learns why instead of seeing a reset. Every limit is off (`0`) by default:
//! behind a load balancer every client comes from the balancer's address, and a
//! per-address limit would refuse them all. Turn them on where clients connect
//! directly.
//!
//! Per-address limits count an IPv6 client by its /64 network, not its single
//! address: a host usually holds a whole /64 and may pick any address in it.
//!
//! An accepted connection holds a [`Ticket`] for as long as it lives (a WebSocket
//! after its upgrade, an SSE stream until it ends); dropping it gives the place back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::clock;
use crate::ops::{Metrics, Rejection};
use crate::rate::TokenBucket;
use crate::sync::lock;
use crate::topic::ErrorCode;

/// Connection limits; `0` turns a limit off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// The most connections this node holds at once.
    pub max_connections: usize,
    /// The most connections one IP address (an IPv6 /64 network) holds at once.
    pub max_connections_per_ip: usize,
    /// The most new connections one IP address (an IPv6 /64 network) may open per
    /// second (a burst of as many is allowed after a quiet second).
    pub new_connections_per_ip: u32,
}

impl ConnectionLimits {
    /// Whether any limit is on.
    pub fn any(&self) -> bool {
        self.max_connections > 0
            || self.max_connections_per_ip > 0
            || self.new_connections_per_ip > 0
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The node holds its most connections.
    NodeFull(usize),
    /// The address holds its most connections.
    TooManyFromIp(usize),
    /// The address opens connections too fast.
    TooFast(u32),
}

impl Refusal {
    /// The HTTP status and message to answer with.
    pub(crate) fn answer(self) -> (ErrorCode, String) {
        match self {
            Self::NodeFull(max) => (
                ErrorCode::Unavailable,
                format!("the server holds its most connections ({max}); try again later"),
            ),
            Self::TooManyFromIp(max) => (
                ErrorCode::TooMany,
                format!("too many connections from your address (at most {max})"),
            ),
            Self::TooFast(rate) => (
                ErrorCode::TooMany,
                format!("too many new connections from your address (at most {rate} per second)"),
            ),
        }
    }
}

/// Counts connections against [`ConnectionLimits`].
#[derive(Debug)]
pub(crate) struct Gate {
    limits: ConnectionLimits,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, IpState>>,
    /// Where refusals are counted.
    metrics: Option<Arc<Metrics>>,
}

#[derive(Debug, Clone, Copy)]
struct IpState {
    open: usize,
    /// Tokens for new connections, refilled at `new_connections_per_ip` per second.
    bucket: TokenBucket,
}

/// A connection's place in the [`Gate`]; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Ticket {
    gate: Arc<Gate>,
    ip: IpAddr,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.gate.open.fetch_sub(1, Ordering::Relaxed);
        if self.gate.per_ip_tracked() {
            let mut per_ip = lock(&self.gate.per_ip);
            if let Some(state) = per_ip.get_mut(&self.ip) {
                state.open = state.open.saturating_sub(1);
            }
        }
    }
}

impl Gate {
    pub(crate) fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            metrics: None,
        }
    }

    /// Counts its refusals in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Option<Arc<Metrics>>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Counts `refusal` in the metrics, when there are any.
    pub(crate) fn count(&self, refusal: Refusal) {
        if let Some(metrics) = &self.metrics {
            let (code, _) = refusal.answer();
            metrics.rejected(Rejection::of_status(code.number()));
        }
    }

    fn per_ip_tracked(&self) -> bool {
        self.limits.max_connections_per_ip > 0 || self.limits.new_connections_per_ip > 0
    }

    /// How many connections hold a ticket.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Admits a connection from `ip`, or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Refusal> {
        let ip = ip_key(ip);
        let limits = &self.limits;
        if limits.max_connections > 0 && self.open() >= limits.max_connections {
            return Err(Refusal::NodeFull(limits.max_connections));
        }
        if self.per_ip_tracked() {
            let now = clock::ticks();
            let rate = limits.new_connections_per_ip;
            let mut per_ip = lock(&self.per_ip);
            if per_ip.len() > 10_000 {
                // Forget addresses with nothing open and a full bucket.
                per_ip.retain(|_, s| s.open > 0 || !s.bucket.is_full(rate, now));
            }
            let state = per_ip.entry(ip).or_insert(IpState {
                open: 0,
                bucket: TokenBucket::full(),
            });
            if limits.max_connections_per_ip > 0 && state.open >= limits.max_connections_per_ip {
                return Err(Refusal::TooManyFromIp(limits.max_connections_per_ip));
            }
            if rate > 0 && !state.bucket.try_take(rate, now) {
                return Err(Refusal::TooFast(rate));
            }
            state.open += 1;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Ticket {
            gate: Arc::clone(self),
            ip,
        })
    }
}

/// The key an address is counted under: an IPv4 address as itself (IPv4-mapped
/// IPv6 addresses as IPv4), an IPv6 address as its /64 network (the rest of its
/// bits zeroed). One IPv6 host is usually given a whole /64 and can pick any
/// address in it, so counting single addresses would let it open one connection
/// per address.
fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
        IpAddr::V4(_) => ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn the_node_limit_counts_open_tickets() {
        let gate = Arc::new(Gate::new(ConnectionLimits {
            max_connections: 2,
            ..ConnectionLimits::default()
        }));
        let one = gate.admit(A);
        let two = gate.admit(B);
        assert!(one.is_ok() && two.is_ok());
        assert_eq!(gate.admit(A).err(), Some(Refusal::NodeFull(2)));
        drop(one);
        assert!(gate.admit(A).is_ok());
    }

    #[test]
    fn the_per_ip_limit_counts_each_address_apart() {
        let gate = Arc::new(Gate::new(ConnectionLimits {
            max_connections_per_ip: 1,
            ..ConnectionLimits::default()
        }));
        let a = gate.admit(A);
        assert!(a.is_ok());
        assert_eq!(gate.admit(A).err(), Some(Refusal::TooManyFromIp(1)));
        assert!(gate.admit(B).is_ok());
        drop(a);
        assert!(gate.admit(A).is_ok());
    }

    #[test]
    fn new_connections_per_ip_are_a_token_bucket() {
        let gate = Arc::new(Gate::new(ConnectionLimits {
            new_connections_per_ip: 3,
            ..ConnectionLimits::default()
        }));
        let tickets: Vec<_> = (0..3).map(|_| gate.admit(A)).collect();
        assert!(tickets.iter().all(Result::is_ok));
        assert_eq!(gate.admit(A).err(), Some(Refusal::TooFast(3)));
        assert!(gate.admit(B).is_ok(), "another address has its own bucket");
        drop(tickets);
        assert_eq!(
            gate.admit(A).err(),
            Some(Refusal::TooFast(3)),
            "closing does not refill the bucket; time does"
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_network() {
        let one = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 1));
        let same_64 = IpAddr::V6(Ipv6Addr::new(
            0x2001, 0xdb8, 1, 2, 0xffff, 0xffff, 0xffff, 0xfffe,
        ));
        let next_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert_eq!(ip_key(one), ip_key(same_64));
        assert_ne!(ip_key(one), ip_key(next_64));
        assert_eq!(
            ip_key(one),
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 0, 0, 0, 0))
        );
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped());
        assert_eq!(ip_key(mapped), A, "IPv4-mapped addresses count as IPv4");

        let gate = Arc::new(Gate::new(ConnectionLimits {
            max_connections_per_ip: 1,
            ..ConnectionLimits::default()
        }));
        let held = gate.admit(one);
        assert!(held.is_ok());
        assert_eq!(
            gate.admit(same_64).err(),
            Some(Refusal::TooManyFromIp(1)),
            "another address of the same /64 shares the place"
        );
        assert!(gate.admit(next_64).is_ok(), "the next /64 has its own");
        drop(held);
        assert!(gate.admit(same_64).is_ok());
    }
}
