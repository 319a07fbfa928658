//! Topic matchers: which topics a subscription selects, and which topics a
//! token's grants cover. Mercure 1.0 has two kinds, [`MatchType::Exact`]
//! (`match=` / `match_exact=`, byte for byte) and [`MatchType::UrlPattern`]
//! (`match_urlpattern=`, a WHATWG URL Pattern such as
//! `https://example.com/books/:id`, relative ones resolved against the hub's
//! URL); 0.x selectors are URI Templates (RFC 6570, `{id}`), kept as
//! [`MatchType::Template`] for the compatibility mode. The value `*` matches every
//! topic whatever the kind.

/// The kind of a matcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// Byte-for-byte equality.
    Exact,
    /// A WHATWG URL Pattern.
    UrlPattern,
    /// An RFC 6570 URI Template (0.x compatibility mode).
    Template,
}

impl MatchType {
    /// The name in subscription topics and the subscriptions API (`exact`,
    /// `urlpattern`, `uritemplate`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::UrlPattern => "urlpattern",
            Self::Template => "uritemplate",
        }
    }
}

/// Why a matcher cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatcherError {
    /// Longer than [`MAX_MATCHER_LEN`](super::config::MAX_MATCHER_LEN).
    #[error("a matcher has at most {max} bytes, this one has {len}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a valid pattern or template.
    #[error("{0}")]
    Invalid(String),
}

/// One compiled matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    kind: MatchType,
    text: Box<str>,
}

impl Matcher {
    /// Compiles `text` as a matcher of `kind`; `base` is the hub's URL
    /// (`{scheme}://{host}/.well-known/mercure`), against which relative URL
    /// patterns and relative topics are resolved.
    pub fn parse(kind: MatchType, text: &str, base: &str) -> Result<Self, MatcherError> {
        let _ = base;
        let max = super::config::MAX_MATCHER_LEN;
        if text.len() > max {
            return Err(MatcherError::TooLong {
                len: text.len(),
                max,
            });
        }
        if kind != MatchType::Exact && text != "*" {
            return Err(MatcherError::Invalid(format!(
                "{} matchers are not built yet",
                kind.name()
            )));
        }
        Ok(Self {
            kind,
            text: Box::from(text),
        })
    }

    /// The kind.
    pub fn kind(&self) -> MatchType {
        self.kind
    }

    /// The matcher as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether `topic` (an IRI) matches.
    pub fn matches(&self, topic: &str) -> bool {
        &*self.text == "*" || *self.text == *topic
    }
}
