//! The bounded label values of the metrics: transports, close codes, reasons for a
//! refusal. Never a topic name or a client id: a label value set is fixed here.

/// The way a client is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Our protocol over a WebSocket (`/ws`).
    Ws,
    /// A WebSocket route of the app's own (`App::socket`).
    Socket,
    /// A Server-Sent Events stream (`/sse`).
    Sse,
    /// A waiting long-poll (`/poll`).
    Poll,
    /// The Pusher Channels protocol over a WebSocket (`/app/{key}`).
    Pusher,
    /// A Mercure subscriber's stream (`GET /.well-known/mercure`).
    Mercure,
}

impl Transport {
    /// Every transport, in label order.
    pub const ALL: [Transport; 6] = [
        Self::Ws,
        Self::Socket,
        Self::Sse,
        Self::Poll,
        Self::Pusher,
        Self::Mercure,
    ];

    /// The label values, in the order of [`Transport::ALL`].
    pub const LABELS: [&'static str; 6] = ["ws", "socket", "sse", "poll", "pusher", "mercure"];

    /// The label value: `ws`, `socket`, `sse`, `poll`, `pusher`, `mercure`.
    pub fn as_str(self) -> &'static str {
        Self::LABELS[self.index()]
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A WebSocket close code as a label: the codes pushwire sends or meets, and
/// `other` for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseLabel(usize);

impl CloseLabel {
    /// The label values, in order; the last is `other`.
    pub const VALUES: [&'static str; 12] = [
        "1000", "1001", "1002", "1003", "1006", "1007", "1008", "1009", "1011", "1012", "3000",
        "other",
    ];

    /// The label of close code `code`.
    pub fn of(code: u16) -> Self {
        let text = match code {
            1000 => "1000",
            1001 => "1001",
            1002 => "1002",
            1003 => "1003",
            1006 => "1006",
            1007 => "1007",
            1008 => "1008",
            1009 => "1009",
            1011 => "1011",
            1012 => "1012",
            3000 => "3000",
            _ => "other",
        };
        let index = Self::VALUES
            .iter()
            .position(|value| *value == text)
            .unwrap_or(Self::VALUES.len() - 1);
        Self(index)
    }

    /// The label value (`"1008"`, `"other"`).
    pub fn as_str(self) -> &'static str {
        Self::VALUES[self.0]
    }

    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Malformed: a bad topic name, query, body or JSON (400).
    BadRequest,
    /// No valid token or API key (401).
    Unauthorized,
    /// Not allowed: permissions, the `Origin` check, loopback only (403).
    Forbidden,
    /// Too large (413).
    TooLarge,
    /// Too many requests or connections from one address (429).
    RateLimited,
    /// The node cannot serve it now: connection limit, broker down (503).
    Unavailable,
    /// Any other error status.
    Other,
}

impl Rejection {
    /// Every reason, in label order.
    pub const ALL: [Rejection; 7] = [
        Self::BadRequest,
        Self::Unauthorized,
        Self::Forbidden,
        Self::TooLarge,
        Self::RateLimited,
        Self::Unavailable,
        Self::Other,
    ];

    /// The reason of an HTTP error status (or our protocol's error code, which
    /// uses the same numbers).
    pub fn of_status(status: u16) -> Self {
        match status {
            400 | 404 | 405 | 409 | 415 | 422 => Self::BadRequest,
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            413 => Self::TooLarge,
            429 => Self::RateLimited,
            503 => Self::Unavailable,
            _ => Self::Other,
        }
    }

    /// The label values, in the order of [`Rejection::ALL`].
    pub const LABELS: [&'static str; 7] = [
        "bad_request",
        "unauthorized",
        "forbidden",
        "too_large",
        "rate_limited",
        "unavailable",
        "other",
    ];

    /// The label value: `bad_request`, `unauthorized`, `forbidden`, `too_large`,
    /// `rate_limited`, `unavailable`, `other`.
    pub fn as_str(self) -> &'static str {
        Self::LABELS[self.index()]
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_outside_the_set_are_other() {
        assert_eq!(CloseLabel::of(1008).as_str(), "1008");
        assert_eq!(CloseLabel::of(3000).as_str(), "3000");
        assert_eq!(CloseLabel::of(1005).as_str(), "other");
        assert_eq!(CloseLabel::of(4999).as_str(), "other");
    }

    #[test]
    fn statuses_map_to_reasons() {
        assert_eq!(Rejection::of_status(422), Rejection::BadRequest);
        assert_eq!(Rejection::of_status(401), Rejection::Unauthorized);
        assert_eq!(Rejection::of_status(403), Rejection::Forbidden);
        assert_eq!(Rejection::of_status(413), Rejection::TooLarge);
        assert_eq!(Rejection::of_status(429), Rejection::RateLimited);
        assert_eq!(Rejection::of_status(503), Rejection::Unavailable);
        assert_eq!(Rejection::of_status(500), Rejection::Other);
        assert_eq!(Rejection::TooLarge.as_str(), "too_large");
        assert_eq!(Transport::Sse.as_str(), "sse");
        for (index, reason) in Rejection::ALL.iter().enumerate() {
            assert_eq!(reason.index(), index);
        }
        for (index, transport) in Transport::ALL.iter().enumerate() {
            assert_eq!(transport.index(), index);
        }
    }
}
