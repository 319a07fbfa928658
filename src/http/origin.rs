//! Which web pages may talk to the server: the `Origin` check on every WebSocket
//! upgrade, SSE stream, long-poll and publish request.
//!
//! A browser sends cookies and client certificates with a WebSocket handshake from
//! any page, and a page from another site can open a socket to any server it likes
//! (cross-site WebSocket hijacking); it can also `POST` a plain-text body to the
//! publish API without a preflight. What the browser cannot forge is the `Origin`
//! header, so the server checks it:
//!
//! - a request without `Origin` is not from a page (a command-line client, another
//!   server) and passes: browsers always send it on WebSocket handshakes and on
//!   cross-origin requests;
//! - by default ([`Origins::same_host`]) a page may connect only to the host it came
//!   from: the `Origin`'s host and port must be the request's `Host`;
//! - [`Origins::allow`] adds origins (`https://app.example.com`), and
//!   [`Origins::any`] turns the check off.
//!
//! Anything else is answered `403` with a JSON body that says what was refused and
//! how to allow it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::uri::{Authority, Scheme};
use http::{HeaderMap, Uri, header};

use super::error::HttpError;
use crate::topic::ErrorCode;

/// The origins whose pages may connect (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origins {
    any: bool,
    /// Normalised `scheme://host:port` entries.
    allowed: Vec<String>,
}

impl Default for Origins {
    fn default() -> Self {
        Self::same_host()
    }
}

/// An origin that cannot be allowed: not `scheme://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an origin: {0:?} (write scheme://host[:port], such as https://app.example.com, or *)")]
pub struct InvalidOrigin(String);

impl Origins {
    /// Only pages served by the host they connect to (the default).
    pub fn same_host() -> Self {
        Self {
            any: false,
            allowed: Vec::new(),
        }
    }

    /// Pages from anywhere: no check at all.
    pub fn any() -> Self {
        Self {
            any: true,
            allowed: Vec::new(),
        }
    }

    /// Also lets pages from `origin` (`https://app.example.com`, or `*` for any)
    /// connect.
    pub fn allow(mut self, origin: &str) -> Result<Self, InvalidOrigin> {
        if origin.trim() == "*" {
            self.any = true;
            return Ok(self);
        }
        let normal = normalise(origin).ok_or_else(|| InvalidOrigin(origin.to_owned()))?;
        if !self.allowed.contains(&normal) {
            self.allowed.push(normal);
        }
        Ok(self)
    }

    /// Whether every origin passes.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Checks a request's `Origin` against its `Host` (or, over HTTP/2, its
    /// `:authority`) and the allow-list.
    pub fn check(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refused> {
        if self.any {
            return Ok(());
        }
        self.check_named(headers, uri)
    }

    /// Whether the request comes from a page this policy names: an origin listed
    /// with [`Origins::allow`], or the request's own host. Not one let in only by
    /// `*`, and not a request without `Origin`. Only such pages are told that they
    /// may send credentials (cookies) across origins (CORS, `src/http/cors.rs`).
    pub fn names(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        headers.contains_key(header::ORIGIN) && self.check_named(headers, uri).is_ok()
    }

    /// [`Origins::check`] without `*`.
    fn check_named(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), Refused> {
        let mut values = headers.get_all(header::ORIGIN).iter();
        let Some(value) = values.next() else {
            return Ok(());
        };
        if values.next().is_some() {
            return Err(Refused::new("several Origin headers".to_owned()));
        }
        let Ok(origin) = value.to_str() else {
            return Err(Refused::new("an Origin header that is not text".to_owned()));
        };
        let Some((scheme, authority)) = split(origin) else {
            return Err(Refused::new(format!("origin {origin:?}")));
        };
        if self.allowed.contains(&key(&scheme, &authority)) {
            return Ok(());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok())
            .and_then(|host| Authority::from_str(host).ok())
            .or_else(|| uri.authority().cloned());
        if let Some(host) = host
            && host.host().eq_ignore_ascii_case(authority.host())
            && port_or_default(&host, &scheme) == port_or_default(&authority, &scheme)
        {
            return Ok(());
        }
        Err(Refused::new(format!("origin {origin:?}")))
    }
}

/// A request refused by [`Origins::check`]; it answers `403`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    what: String,
}

impl Refused {
    fn new(what: String) -> Self {
        Self { what }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not allowed: pages may connect only to the host they came from, \
             or from an origin the server allows (--allowed-origin)",
            self.what
        )
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        HttpError::new(ErrorCode::Forbidden, self.to_string()).into_response()
    }
}

/// `scheme://host[:port]` (nothing after it but an optional `/`) as its parts.
fn split(origin: &str) -> Option<(Scheme, Authority)> {
    let uri = Uri::from_str(origin).ok()?;
    let parts = uri.into_parts();
    let scheme = parts.scheme?;
    let authority = parts.authority?;
    let path_ok = parts
        .path_and_query
        .is_none_or(|p| p.as_str().is_empty() || p.as_str() == "/");
    if !path_ok || authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    Some((scheme, authority))
}

fn normalise(origin: &str) -> Option<String> {
    let (scheme, authority) = split(origin.trim())?;
    Some(key(&scheme, &authority))
}

/// An origin as the allow-list keeps it: `scheme://host:port`, host lowercased,
/// default port written out.
fn key(scheme: &Scheme, authority: &Authority) -> String {
    format!(
        "{scheme}://{}:{}",
        authority.host().to_ascii_lowercase(),
        port_or_default(authority, scheme)
    )
}

/// The authority's port, or the default port of `scheme` (`ws` as `http`).
fn port_or_default(authority: &Authority, scheme: &Scheme) -> u16 {
    authority.port_u16().unwrap_or(match scheme.as_str() {
        "https" | "wss" => 443,
        _ => 80,
    })
}

/// The middleware on socket and topic routes: a request from a page whose origin
/// is not allowed gets 403 before its handler runs.
pub(crate) async fn check_origin(
    State(origins): State<Arc<Origins>>,
    request: Request,
    next: Next,
) -> Response {
    match origins.check(request.headers(), request.uri()) {
        Ok(()) => {
            let mut response = next.run(request).await;
            vary_origin(&mut response);
            response
        }
        Err(refused) => {
            tracing::info!("refused a request: {refused}");
            let mut response = refused.into_response();
            vary_origin(&mut response);
            response
        }
    }
}

/// Adds `Vary: Origin` to a response whose answer depended on the request's
/// `Origin`, unless a `Vary` header already names it (the CORS layer's does).
fn vary_origin(response: &mut Response) {
    let named = response
        .headers()
        .get_all(header::VARY)
        .iter()
        .any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|name| name.trim().eq_ignore_ascii_case("origin") || name.trim() == "*")
            })
        });
    if !named {
        response
            .headers_mut()
            .append(header::VARY, http::HeaderValue::from_static("origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(origin) = origin {
            headers.insert(
                header::ORIGIN,
                origin.parse().unwrap_or_else(|e| panic!("{e}")),
            );
        }
        headers.insert(header::HOST, host.parse().unwrap_or_else(|e| panic!("{e}")));
        headers
    }

    fn check(origins: &Origins, origin: Option<&str>, host: &str) -> bool {
        origins
            .check(&headers(origin, host), &Uri::from_static("/ws"))
            .is_ok()
    }

    #[test]
    fn the_default_lets_pages_reach_their_own_host_only() {
        let same = Origins::default();
        assert!(check(&same, None, "127.0.0.1:8888"));
        assert!(check(
            &same,
            Some("http://127.0.0.1:8888"),
            "127.0.0.1:8888"
        ));
        assert!(check(
            &same,
            Some("http://LOCALHOST:8888"),
            "localhost:8888"
        ));
        assert!(check(&same, Some("https://example.com"), "example.com"));
        assert!(check(&same, Some("https://example.com"), "example.com:443"));
        assert!(check(&same, Some("http://[::1]:8888"), "[::1]:8888"));
        assert!(!check(&same, Some("http://evil.example"), "127.0.0.1:8888"));
        assert!(!check(
            &same,
            Some("http://127.0.0.1:9999"),
            "127.0.0.1:8888"
        ));
        assert!(!check(&same, Some("https://example.com"), "example.com:80"));
        assert!(!check(&same, Some("null"), "127.0.0.1:8888"));
        assert!(!check(
            &same,
            Some("http://a@127.0.0.1:8888"),
            "127.0.0.1:8888"
        ));
    }

    #[test]
    fn allowed_origins_are_compared_normalised() {
        let origins = Origins::same_host()
            .allow("https://App.Example.com/")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&origins, Some("https://app.example.com:443"), "x:1"));
        assert!(!check(&origins, Some("http://app.example.com"), "x:1"));
        let any = Origins::same_host()
            .allow("*")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&any, Some("null"), "x:1"));
        assert!(Origins::same_host().allow("example.com").is_err());
        assert!(Origins::same_host().allow("https://e.com/path").is_err());
    }

    #[test]
    fn only_listed_origins_and_the_own_host_are_named() {
        let names = |origins: &Origins, origin: Option<&str>| {
            origins.names(
                &headers(origin, "127.0.0.1:8888"),
                &Uri::from_static("/poll"),
            )
        };
        let listed = Origins::same_host()
            .allow("https://app.example.com")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(names(&listed, Some("https://app.example.com")));
        assert!(names(&listed, Some("http://127.0.0.1:8888")));
        assert!(!names(&listed, Some("https://evil.example")));
        assert!(!names(&listed, None));
        let any = Origins::any();
        assert!(
            any.check(
                &headers(Some("https://x.example"), "h:1"),
                &Uri::from_static("/")
            )
            .is_ok()
        );
        assert!(!names(&any, Some("https://x.example")));
        assert!(names(&any, Some("http://127.0.0.1:8888")));
        let both = Origins::any()
            .allow("https://app.example.com")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(names(&both, Some("https://app.example.com")));
    }

    #[test]
    fn http2_requests_are_checked_against_their_authority() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            http::HeaderValue::from_static("https://a:8443"),
        );
        let ok = Origins::default().check(&headers, &Uri::from_static("https://a:8443/sse"));
        assert!(ok.is_ok());
        let no = Origins::default().check(&headers, &Uri::from_static("https://b:8443/sse"));
        assert!(no.is_err());
    }
}
