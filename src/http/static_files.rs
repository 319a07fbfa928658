//! Pages and static files: assets embedded in the binary, or a folder on disk.
//!
//! Embedded assets are answered with a content hash as `ETag` (and `304 Not Modified`
//! for a matching `If-None-Match`). A folder is served through tower-http's
//! `ServeFile` (content type, `Last-Modified`, `304`, ranges) only after the request
//! path has been proven to name a regular file inside the folder: `..`, encoded
//! traversal, backslashes, absolute paths and symlinks that leave the folder all
//! answer 404, exactly like a file that does not exist.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

/// A file compiled into the binary.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Path below the mount point, without a leading slash (`"counter.js"`).
    pub path: &'static str,
    /// The `Content-Type` to answer with.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

/// One in-memory file, ready to answer requests: an embedded asset or a page read at
/// start-up.
#[derive(Debug, Clone)]
pub(crate) struct MemoryFile {
    content_type: HeaderValue,
    body: Bytes,
    etag: HeaderValue,
    /// A `Content-Security-Policy` to send with it.
    csp: Option<HeaderValue>,
}

impl MemoryFile {
    pub(crate) fn new(content_type: HeaderValue, body: Bytes) -> Self {
        // A strong tag from a SHA-1 of the bytes: the same bytes, the same tag.
        let digest = sha1_smol::Sha1::from(&body[..]).digest().to_string();
        let etag = HeaderValue::from_str(&format!("\"{}\"", &digest[..16]))
            .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
        Self {
            content_type,
            body,
            etag,
            csp: None,
        }
    }

    /// The same file, sent with this `Content-Security-Policy`.
    pub(crate) fn with_csp(mut self, csp: Option<HeaderValue>) -> Self {
        self.csp = csp;
        self
    }

    pub(crate) fn from_asset(asset: &Asset) -> Self {
        Self::new(
            HeaderValue::from_static(asset.content_type),
            Bytes::from_static(asset.body),
        )
    }

    /// Answers a GET/HEAD for this file, honouring `If-None-Match`.
    pub(crate) fn respond(&self, request: &Request) -> Response {
        let cache = [
            (header::ETAG, self.etag.clone()),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ];
        if if_none_match(request, &self.etag) {
            return (StatusCode::NOT_MODIFIED, cache).into_response();
        }
        let mut response = (
            cache,
            [(header::CONTENT_TYPE, self.content_type.clone())],
            Body::from(self.body.clone()),
        )
            .into_response();
        if let Some(csp) = &self.csp {
            response
                .headers_mut()
                .insert(header::CONTENT_SECURITY_POLICY, csp.clone());
        }
        response
    }
}

/// Whether the request's `If-None-Match` names `etag` (or is `*`).
fn if_none_match(request: &Request, etag: &HeaderValue) -> bool {
    request
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes())
}

/// Where a static mount's files come from.
#[derive(Debug, Clone)]
pub(crate) enum StaticFiles {
    /// Assets compiled into the binary, by path.
    Embedded(Arc<HashMap<&'static str, MemoryFile>>),
    /// A folder, by its canonical path.
    Dir(Arc<PathBuf>),
}

impl StaticFiles {
    pub(crate) fn embedded(assets: &[Asset]) -> Self {
        Self::Embedded(Arc::new(
            assets
                .iter()
                .map(|asset| (asset.path, MemoryFile::from_asset(asset)))
                .collect(),
        ))
    }

    /// A folder; fails unless `dir` is a directory this process can list.
    pub(crate) fn dir(dir: &Path) -> std::io::Result<Self> {
        let canonical = dir.canonicalize()?;
        if !canonical.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        std::fs::read_dir(&canonical)?;
        Ok(Self::Dir(Arc::new(canonical)))
    }

    /// Answers a request whose path below the mount point is `raw_path`
    /// (still percent-encoded, without the leading slash).
    pub(crate) async fn respond(&self, raw_path: &str, request: Request) -> Response {
        let Some(relative) = safe_relative_path(raw_path) else {
            return not_found();
        };
        match self {
            Self::Embedded(files) => match relative.to_str().and_then(|p| files.get(p)) {
                Some(file) => file.respond(&request),
                None => not_found(),
            },
            Self::Dir(root) => {
                let Some(file) = resolve_inside(root, &relative).await else {
                    return not_found();
                };
                match ServeFile::new(file).oneshot(request).await {
                    Ok(response) => response.map(Body::new),
                    Err(infallible) => match infallible {},
                }
            }
        }
    }
}

/// The 404 every refused or missing path gets: the same answer, so a probe learns
/// nothing about what exists outside the folder.
pub(crate) fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Decodes a request path and accepts it only as a plain relative path: no `..`,
/// no `.`, no empty segment, no backslash, no NUL, no absolute path.
fn safe_relative_path(raw: &str) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()?;
    if decoded.is_empty() || decoded.contains(['\\', '\0']) {
        return None;
    }
    let mut out = PathBuf::new();
    for segment in decoded.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return None;
        }
        let mut components = Path::new(segment).components();
        match (components.next(), components.next()) {
            (Some(Component::Normal(part)), None) => out.push(part),
            _ => return None,
        }
    }
    Some(out)
}

/// Resolves `relative` below `root` following symlinks, and returns the file only if
/// it is a regular file that is still inside `root`.
async fn resolve_inside(root: &Path, relative: &Path) -> Option<PathBuf> {
    let candidate = root.join(relative);
    let resolved = tokio::fs::canonicalize(&candidate).await.ok()?;
    if !resolved.starts_with(root) {
        tracing::debug!(path = %candidate.display(), "refused: resolves outside the static folder");
        return None;
    }
    let meta = tokio::fs::metadata(&resolved).await.ok()?;
    meta.is_file().then_some(resolved)
}

/// The handler of a page: `GET` answers the file (with `ETag` and `304`).
pub(crate) async fn page(State(file): State<Arc<MemoryFile>>, request: Request) -> Response {
    file.respond(&request)
}

/// A static folder (or embedded set of files) and where it is mounted.
pub(crate) struct Mounted {
    /// The files.
    pub(crate) files: StaticFiles,
    /// The mount point with its trailing slash (`/static/`).
    pub(crate) prefix: String,
}

/// The handler of a static folder: the file below the mount point. The path is
/// taken from the URI still percent-encoded (not from axum's decoded `Path`), so
/// that [`StaticFiles::respond`] sees traversal attempts as they were sent.
pub(crate) async fn folder(State(mounted): State<Arc<Mounted>>, request: Request) -> Response {
    let raw = request
        .uri()
        .path()
        .strip_prefix(&mounted.prefix)
        .unwrap_or("")
        .to_owned();
    mounted.files.respond(&raw, request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_accepted() {
        assert_eq!(
            safe_relative_path("js/app.js"),
            Some(PathBuf::from("js/app.js"))
        );
        assert_eq!(
            safe_relative_path("my%20file.txt"),
            Some(PathBuf::from("my file.txt"))
        );
    }

    #[test]
    fn traversal_in_every_spelling_is_refused() {
        for raw in [
            "..",
            "../secret",
            "a/../../secret",
            "%2e%2e/secret",
            "%2E%2E%2Fsecret",
            "..%2fsecret",
            "..\\secret",
            "a%5c..%5csecret",
            "/etc/passwd",
            "%2fetc%2fpasswd",
            "a//b",
            "./a",
            "a%00b",
            "",
        ] {
            assert_eq!(safe_relative_path(raw), None, "{raw:?} must be refused");
        }
    }
}
