//! Tokens for the tests: HS256 JWTs signed with a test secret, and a `/ws` client
//! that has authenticated with one.

use std::collections::BTreeMap;

use pushwire::auth::{Claims, SigningKey, sign};
use serde_json::json;

use super::topics::{request, ws};
use super::{Client, Running};

/// The secret the auth and permission tests' servers verify tokens with.
pub const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

/// The `topics` claim granting each pattern its permissions.
pub fn grants(pairs: &[(&str, &[&str])]) -> Option<BTreeMap<String, Vec<String>>> {
    Some(
        pairs
            .iter()
            .map(|(p, perms)| {
                (
                    (*p).to_owned(),
                    perms.iter().map(|s| (*s).to_owned()).collect(),
                )
            })
            .collect(),
    )
}

/// `claims` signed with HS256 and [`SECRET`].
pub fn hs256(claims: &Claims) -> String {
    sign(claims, &SigningKey::Secret(SECRET.into()), None).expect("sign")
}

/// An HS256 token signed with `secret` for `user`, valid an hour, with `sub` and
/// `presence` on `chat:*`.
pub fn chat_token(secret: &str, user: &str) -> String {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let claims = Claims {
        sub: Some(user.to_owned()),
        exp,
        topics: grants(&[("chat:*", &["sub", "presence"])]),
        ..Claims::default()
    };
    sign(&claims, &SigningKey::Secret(secret.into()), None).expect("sign")
}

/// A `/ws` client authenticated with `token`.
pub async fn authed(server: &Running, token: &str) -> Client {
    let (mut client, _) = ws(server).await;
    let reply = request(
        &mut client,
        json!({"op": "auth", "id": "auth", "token": token}),
    )
    .await;
    assert!(reply["ok"].is_object(), "auth failed: {reply}");
    client
}
