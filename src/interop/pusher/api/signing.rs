//! The signing check of every API request, as Pusher specifies it: the query
//! carries `auth_key` (the app's key), `auth_timestamp` (Unix seconds, within
//! [`MAX_CLOCK_SKEW`] of the server's clock), `auth_version` (`1.0`), `body_md5`
//! (the hex MD5 of a non-empty body) and `auth_signature`, the hex
//! HMAC-SHA256 with the app's secret of `METHOD\nPATH\nQUERY`, where `QUERY` is
//! every other parameter (decoded, keys lower-cased) sorted by key and joined as
//! `key=value&…` without escaping.

use md5::{Digest as _, Md5};
use percent_encoding::percent_decode_str;

use super::error::ApiError;
use crate::interop::pusher::app::PusherApp;
use crate::interop::pusher::signature::{hex, verify};

/// How far `auth_timestamp` may be from the server's clock, in seconds.
pub(crate) const MAX_CLOCK_SKEW: u64 = 600;

/// The only `auth_version` there is.
pub(crate) const AUTH_VERSION: &str = "1.0";

/// The parameters of a request whose signature was checked, the auth ones left
/// out; keys are lower case.
#[derive(Debug, Default)]
pub(crate) struct Query {
    params: Vec<(String, String)>,
}

impl Query {
    /// The value of `key` (the first one given).
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A request as the signing check sees it.
pub(crate) struct Signed<'a> {
    /// The method, upper case (`POST`).
    pub(crate) method: &'a str,
    /// The path as requested (`/apps/3/events`).
    pub(crate) path: &'a str,
    /// The raw query string (without `?`).
    pub(crate) query: &'a str,
    /// The body.
    pub(crate) body: &'a [u8],
}

/// Checks `request` against `app`'s key and secret at `now` (Unix seconds);
/// answers its other parameters, or the 401 Pusher gives.
pub(crate) fn check(app: &PusherApp, request: &Signed<'_>, now: u64) -> Result<Query, ApiError> {
    let mut params = decode_query(request.query)?;
    let mut take = |name: &str| {
        params
            .iter()
            .position(|(k, _)| k == name)
            .map(|i| params.remove(i).1)
    };
    let missing = |name: &str| ApiError::unauthorized(format!("Missing parameter: {name}"));
    let signature = take("auth_signature").ok_or_else(|| missing("auth_signature"))?;
    let (Some(key), Some(timestamp), Some(version)) = (
        params_value(&params, "auth_key"),
        params_value(&params, "auth_timestamp"),
        params_value(&params, "auth_version"),
    ) else {
        let name = ["auth_key", "auth_timestamp", "auth_version"]
            .into_iter()
            .find(|name| params_value(&params, name).is_none())
            .unwrap_or("auth_key");
        return Err(missing(name));
    };
    if key != app.key {
        return Err(ApiError::unauthorized(format!(
            "Unknown auth_key {key:?} for app {}",
            app.id
        )));
    }
    if version != AUTH_VERSION {
        return Err(ApiError::unauthorized(format!(
            "Unsupported auth_version {version:?}: only {AUTH_VERSION} is supported"
        )));
    }
    let given = timestamp
        .parse::<u64>()
        .map_err(|_| ApiError::unauthorized(format!("Invalid auth_timestamp {timestamp:?}")))?;
    if given.abs_diff(now) > MAX_CLOCK_SKEW {
        return Err(ApiError::unauthorized(format!(
            "Timestamp expired: Given timestamp ({given}) not within {MAX_CLOCK_SKEW}s of server time ({now})"
        )));
    }
    let body_md5 = hex(&Md5::digest(request.body));
    match params_value(&params, "body_md5") {
        Some(given) if !given.eq_ignore_ascii_case(&body_md5) => {
            return Err(ApiError::unauthorized(format!(
                "Invalid body_md5: the body's MD5 is {body_md5}, the request says {given}"
            )));
        }
        None if !request.body.is_empty() => return Err(missing("body_md5")),
        _ => {}
    }
    // The path as sent, or (for SDKs that sign a channel name before the HTTP
    // client escapes it) as decoded.
    let text = string_to_sign(request.method, request.path, &params);
    let decoded = percent_decode_str(request.path).decode_utf8().ok();
    let signed = verify(&app.secret, &text, &signature)
        || decoded.is_some_and(|path| {
            path != request.path
                && verify(
                    &app.secret,
                    &string_to_sign(request.method, &path, &params),
                    &signature,
                )
        });
    if !signed {
        return Err(ApiError::unauthorized(format!(
            "Invalid signature: you should have sent HmacSHA256Hex({text:?}, your_secret_key), but you sent {signature:?}"
        )));
    }
    let params = params
        .into_iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "auth_key" | "auth_timestamp" | "auth_version" | "body_md5"
            )
        })
        .collect();
    Ok(Query { params })
}

fn params_value<'p>(params: &'p [(String, String)], key: &str) -> Option<&'p str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `METHOD\nPATH\nk1=v1&k2=v2…`, the parameters sorted by key (then value).
fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{method}\n{path}\n{}", query.join("&"))
}

/// The query's pairs, percent-decoded, keys lower-cased.
fn decode_query(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |text: &str| {
        percent_decode_str(text)
            .decode_utf8()
            .map(|t| t.into_owned())
            .map_err(|_| ApiError::bad_request("The query string is not UTF-8"))
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(key)?.to_ascii_lowercase(), decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> PusherApp {
        PusherApp::new("3", "278d425bdf160c739803", "7ad3773142a6692b25b8")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    const BODY: &str = r#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;

    /// The worked example of Pusher's HTTP API reference.
    fn example(query: &str) -> Result<Query, ApiError> {
        let request = Signed {
            method: "POST",
            path: "/apps/3/events",
            query,
            body: BODY.as_bytes(),
        };
        check(&app(), &request, 1_353_088_179 + 5)
    }

    const GOOD: &str = "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

    #[test]
    fn the_docs_worked_example_passes() {
        assert_eq!(
            hex(&Md5::digest(BODY.as_bytes())),
            "ec365a775a4cd0599faeb73354201b6f"
        );
        let query = example(GOOD).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(query.get("auth_key"), None, "auth parameters are left out");
    }

    #[test]
    fn every_part_of_the_signature_counts() {
        let stale = GOOD.replace("1353088179", "1353087000");
        let err = example(&stale)
            .err()
            .unwrap_or_else(|| panic!("stale passed"));
        assert!(err.message.starts_with("Timestamp expired"), "{err}");
        let bad_md5 = GOOD.replace("ec365a", "ec365b");
        let err = example(&bad_md5)
            .err()
            .unwrap_or_else(|| panic!("md5 passed"));
        assert!(err.message.starts_with("Invalid body_md5"), "{err}");
        let bad_sig = GOOD.replace("da4548", "da4549");
        let err = example(&bad_sig)
            .err()
            .unwrap_or_else(|| panic!("signature passed"));
        assert!(err.message.starts_with("Invalid signature"), "{err}");
        let extra = format!("{GOOD}&socket_id=1.1");
        assert!(example(&extra).is_err(), "an unsigned parameter");
        let no_key = GOOD.replace("auth_key=278d425bdf160c739803&", "");
        let err = example(&no_key)
            .err()
            .unwrap_or_else(|| panic!("no key passed"));
        assert_eq!(err.message, "Missing parameter: auth_key");
        let version = GOOD.replace("auth_version=1.0", "auth_version=2.0");
        assert!(example(&version).is_err());
        for err in [
            example(&stale),
            example(&bad_md5),
            example(&bad_sig),
            example(&no_key),
        ] {
            assert_eq!(err.err().map(|e| e.status.as_u16()), Some(401));
        }
    }

    #[test]
    fn the_path_may_be_signed_as_sent_or_as_decoded() {
        let query = |path: &str| {
            let params = vec![
                (
                    String::from("auth_key"),
                    String::from("278d425bdf160c739803"),
                ),
                (String::from("auth_timestamp"), String::from("100")),
                (String::from("auth_version"), String::from("1.0")),
            ];
            let signature = crate::interop::pusher::signature::sign(
                "7ad3773142a6692b25b8",
                &string_to_sign("GET", path, &params),
            );
            format!(
                "auth_key=278d425bdf160c739803&auth_timestamp=100&auth_version=1.0&auth_signature={signature}"
            )
        };
        let sent = "/apps/3/channels/presence-a%40b";
        for signed_path in [sent, "/apps/3/channels/presence-a@b"] {
            let query = query(signed_path);
            let request = Signed {
                method: "GET",
                path: sent,
                query: &query,
                body: b"",
            };
            assert!(check(&app(), &request, 100).is_ok(), "{signed_path}");
        }
        let query = query("/apps/3/channels/presence-a");
        let request = Signed {
            method: "GET",
            path: sent,
            query: &query,
            body: b"",
        };
        assert!(check(&app(), &request, 100).is_err());
    }

    #[test]
    fn parameters_are_decoded_lower_cased_and_sorted() {
        let params = decode_query("b=2&A=x%20y&a=0").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            string_to_sign("GET", "/p", &params),
            "GET\n/p\na=0&a=x y&b=2"
        );
    }
}
