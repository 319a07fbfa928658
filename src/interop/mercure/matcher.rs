//! Topic matchers: which topics a subscription selects, and which topics a
//! token's grants cover. Mercure 1.0 has two kinds, [`MatchType::Exact`]
//! (`match=` / `match_exact=`, byte for byte) and [`MatchType::UrlPattern`]
//! (`match_urlpattern=`, a WHATWG URL Pattern such as
//! `https://example.com/books/:id`, relative ones resolved against the hub's
//! URL); 0.x selectors are URI Templates (RFC 6570, `{id}`), kept as
//! [`MatchType::Template`] for the compatibility mode. The value `*` matches every
//! topic whatever the kind.
//!
//! URL patterns are compiled by the `urlpattern` crate and URI Templates by our
//! own small compiler (`template.rs`); both run on the `regex` crate,
//! whose matching time is linear in the topic's length whatever the pattern (the
//! URL Pattern standard's own regular expressions can backtrack without end,
//! which Mercure forbids).

use std::sync::Arc;

use url::Url;
use urlpattern::regexp::RegExp;
use urlpattern::{
    RegexSyntax, UrlPattern, UrlPatternInit, UrlPatternMatchInput, UrlPatternOptions,
};

use super::template::Template;

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
    compiled: Compiled,
}

/// What a matcher tests topics with.
#[derive(Clone)]
enum Compiled {
    /// `*`: every topic.
    All,
    /// Byte-for-byte equality with the text.
    Exact,
    /// A URL pattern, and the base URL relative topics are resolved against.
    UrlPattern {
        pattern: Arc<UrlPattern<Bounded>>,
        base: Arc<Url>,
    },
    /// A URI Template.
    Template(Arc<Template>),
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "All",
            Self::Exact => "Exact",
            Self::UrlPattern { .. } => "UrlPattern",
            Self::Template(_) => "Template",
        })
    }
}

impl Matcher {
    /// Compiles `text` as a matcher of `kind`; `base` is the hub's URL
    /// (`{scheme}://{host}/.well-known/mercure`), against which relative URL
    /// patterns and relative topics are resolved. `*` matches every topic
    /// whatever `kind`; exact matchers are never resolved.
    pub fn parse(kind: MatchType, text: &str, base: &str) -> Result<Self, MatcherError> {
        let max = super::config::MAX_MATCHER_LEN;
        if text.len() > max {
            return Err(MatcherError::TooLong {
                len: text.len(),
                max,
            });
        }
        let compiled = if text == "*" {
            Compiled::All
        } else {
            match kind {
                MatchType::Exact => Compiled::Exact,
                MatchType::UrlPattern => url_pattern(text, base)?,
                MatchType::Template => Compiled::Template(Arc::new(
                    Template::compile(text).map_err(MatcherError::Invalid)?,
                )),
            }
        };
        Ok(Self {
            kind,
            text: Box::from(text),
            compiled,
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

    /// Whether `topic` (an IRI) matches. A URL pattern never matches a topic
    /// that is not a URL (once resolved against the hub's URL).
    pub fn matches(&self, topic: &str) -> bool {
        match &self.compiled {
            Compiled::All => true,
            Compiled::Exact => *self.text == *topic,
            Compiled::UrlPattern { pattern, base } => {
                let Ok(url) = Url::options().base_url(Some(base)).parse(topic) else {
                    return false;
                };
                pattern
                    .test(UrlPatternMatchInput::Url(url))
                    .unwrap_or(false)
            }
            // As the 0.x hub did: a template also matches its own text.
            Compiled::Template(template) => *self.text == *topic || template.matches(topic),
        }
    }
}

/// Compiles a URL pattern, relative ones against `base`; `ignoreCase` off.
fn url_pattern(text: &str, base: &str) -> Result<Compiled, MatcherError> {
    let base = Url::parse(base)
        .map_err(|e| MatcherError::Invalid(format!("the hub URL {base:?} is not a URL: {e}")))?;
    let init = UrlPatternInit::parse_constructor_string::<Bounded>(text, Some(base.clone()))
        .map_err(|e| MatcherError::Invalid(format!("not a URL pattern: {e}")))?;
    let pattern = UrlPattern::<Bounded>::parse(
        init,
        UrlPatternOptions {
            ignore_case: false,
            ..UrlPatternOptions::default()
        },
    )
    .map_err(|e| MatcherError::Invalid(format!("not a URL pattern: {e}")))?;
    Ok(Compiled::UrlPattern {
        pattern: Arc::new(pattern),
        base: Arc::new(base),
    })
}

/// The most bytes the compiled program of one URL pattern component may take
/// (the `regex` crate allows 10 MiB by default; a 1 KiB pattern such as
/// `:a(\w{999})` would take more).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The `regex` crate's `Regex` with a smaller [`REGEX_SIZE_LIMIT`], so that a
/// subscriber cannot make the hub compile huge programs.
struct Bounded(regex::Regex);

impl RegExp for Bounded {
    fn syntax() -> RegexSyntax {
        RegexSyntax::Rust
    }

    fn parse(pattern: &str, _flags: &str, _force_eval: bool) -> Result<Self, ()> {
        regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Self)
            .map_err(|_| ())
    }

    fn matches<'a>(&self, text: &'a str) -> Option<Vec<Option<&'a str>>> {
        let captures = self.0.captures(text)?;
        Some(
            captures
                .iter()
                .skip(1)
                .map(|c| c.map(|m| m.as_str()))
                .collect(),
        )
    }

    fn pattern_string(&self) -> &str {
        self.0.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://hub.example.com/.well-known/mercure";

    fn matcher(kind: MatchType, text: &str) -> Matcher {
        Matcher::parse(kind, text, BASE).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn a_star_matches_every_topic_whatever_the_kind() {
        for kind in [MatchType::Exact, MatchType::UrlPattern, MatchType::Template] {
            let all = matcher(kind, "*");
            assert!(all.matches("https://example.com/books/1"));
            assert!(all.matches("not a url at all"));
            assert!(all.matches(""));
        }
    }

    #[test]
    fn exact_matchers_compare_bytes_and_resolve_nothing() {
        let exact = matcher(MatchType::Exact, "https://example.com/books/1");
        assert!(exact.matches("https://example.com/books/1"));
        assert!(!exact.matches("https://EXAMPLE.com/books/1"));
        assert!(!exact.matches("https://example.com/books/1/"));
        assert!(!exact.matches("https://example.com/books/%31"));
        let relative = matcher(MatchType::Exact, "bar");
        assert!(relative.matches("bar"));
        assert!(!relative.matches("https://hub.example.com/.well-known/bar"));
        assert_eq!(relative.kind(), MatchType::Exact);
        assert_eq!(relative.text(), "bar");
    }

    #[test]
    fn url_patterns_match_urls_by_their_components() {
        let books = matcher(MatchType::UrlPattern, "https://example.com/books/:id");
        assert!(books.matches("https://example.com/books/1"));
        assert!(books.matches("https://example.com/books/war-and-peace"));
        // Host names are case-insensitive (URL canonicalization); paths are not.
        assert!(books.matches("https://EXAMPLE.com/books/1"));
        assert!(!books.matches("https://example.com/BOOKS/1"));
        assert!(!books.matches("https://example.com/books/1/reviews"));
        assert!(!books.matches("https://example.com/books/"));
        assert!(!books.matches("http://example.com/books/1"));
        assert!(!books.matches("https://example.org/books/1"));
        // Components a pattern leaves out are wildcards (the standard's rule): a
        // query or a fragment does not stop a match.
        assert!(books.matches("https://example.com/books/1?page=2#top"));
        // A topic that is not a URL never matches a pattern.
        assert!(!books.matches("urn:isbn:0451450523"));
        let any_scheme = matcher(MatchType::UrlPattern, "*://example.com/books/*");
        assert!(any_scheme.matches("http://example.com/books/1/reviews"));
        assert!(any_scheme.matches("https://example.com/books/1"));
    }

    #[test]
    fn relative_patterns_and_relative_topics_are_resolved_against_the_hub() {
        let subscriptions = matcher(
            MatchType::UrlPattern,
            "/.well-known/mercure/subscriptions/:type/:match/:subscriber",
        );
        let topic = "/.well-known/mercure/subscriptions/exact/https%3A%2F%2Fexample.com%2Ffoo/urn%3Auuid%3A1";
        assert!(subscriptions.matches(topic));
        assert!(subscriptions.matches(&format!("https://hub.example.com{topic}")));
        assert!(!subscriptions.matches(&format!("https://other.example.com{topic}")));
        let absolute = matcher(MatchType::UrlPattern, "https://hub.example.com/books/:id");
        assert!(absolute.matches("/books/1"));
        assert!(!absolute.matches("/films/1"));
    }

    #[test]
    fn url_patterns_with_regexp_groups_run_in_linear_time() {
        let digits = matcher(MatchType::UrlPattern, "https://example.com/books/:id(\\d+)");
        assert!(digits.matches("https://example.com/books/42"));
        assert!(!digits.matches("https://example.com/books/forty-two"));
        // A pattern that backtracks catastrophically in a JavaScript engine.
        let nested = matcher(MatchType::UrlPattern, "https://example.com/:x((?:a+)+b)");
        let long = format!("https://example.com/{}c", "a".repeat(5000));
        assert!(!nested.matches(&long));
        let bounded = matcher(MatchType::UrlPattern, "https://example.com/:x(\\w{1,20})");
        assert!(bounded.matches("https://example.com/abc"));
        // What the regex crate cannot compile (back-references) is refused, and
        // so are patterns whose programs would be too large.
        for refused in [
            "https://example.com/:x(a\\1)",
            "https://example.com/:x(\\w{999})",
        ] {
            assert!(
                matches!(
                    Matcher::parse(MatchType::UrlPattern, refused, BASE),
                    Err(MatcherError::Invalid(_))
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn malformed_and_too_long_matchers_are_refused() {
        assert!(matches!(
            Matcher::parse(MatchType::UrlPattern, "https://example.com/:id(", BASE),
            Err(MatcherError::Invalid(_))
        ));
        let long = "a".repeat(super::super::config::MAX_MATCHER_LEN + 1);
        assert_eq!(
            Matcher::parse(MatchType::Exact, &long, BASE).err(),
            Some(MatcherError::TooLong {
                len: long.len(),
                max: super::super::config::MAX_MATCHER_LEN
            })
        );
        assert!(matches!(
            Matcher::parse(MatchType::Template, "https://example.com/{id", BASE),
            Err(MatcherError::Invalid(_))
        ));
    }

    #[test]
    fn templates_match_their_expansions() {
        let books = matcher(MatchType::Template, "https://example.com/books/{id}");
        assert!(books.matches("https://example.com/books/1"));
        assert!(books.matches("https://example.com/books/"));
        assert!(!books.matches("https://example.com/books/1/reviews"));
        assert!(!books.matches("https://example.org/books/1"));
        assert!(books.matches("https://example.com/books/{id}"));
        assert_eq!(books.kind().name(), "uritemplate");
    }
}
