//! The channel queries: `GET /apps/{app_id}/channels` (the occupied channels,
//! `filter_by_prefix`, `info=user_count` with a `presence-` prefix),
//! `GET /apps/{app_id}/channels/{channel_name}` (`occupied`, `info=
//! subscription_count,user_count`) and `GET …/channels/{channel_name}/users` (the
//! users of a presence channel); and the `info` attributes the event routes answer
//! with.

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::{call, json, occupancy};
use crate::broker::BrokerError;
use crate::hub::Hub;
use crate::interop::pusher::app::PusherApp;
use crate::interop::pusher::channel::{Channel, ChannelKind};
use crate::interop::pusher::context::Pusher;
use crate::topic::Topic;

/// The attributes a request asks for with `info=a,b`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Attributes {
    /// `subscription_count`: the connections subscribed.
    pub(crate) subscription_count: bool,
    /// `user_count`: the distinct users of a presence channel.
    pub(crate) user_count: bool,
}

impl Attributes {
    /// Reads `info` (a comma-separated list; absent or empty: none).
    pub(crate) fn parse(info: Option<&str>) -> Result<Self, ApiError> {
        let mut out = Self::default();
        for name in info.unwrap_or("").split(',').map(str::trim) {
            match name {
                "" => {}
                "subscription_count" => out.subscription_count = true,
                "user_count" => out.user_count = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Unknown info attribute {other:?} (known: subscription_count, user_count)"
                    )));
                }
            }
        }
        Ok(out)
    }

    /// Whether any is asked for.
    pub(crate) fn any(self) -> bool {
        self.subscription_count || self.user_count
    }
}

/// The attributes `attributes` asks for of `channel` (topic `topic`):
/// `subscription_count` always, `user_count` for presence channels only.
pub(crate) async fn info(
    hub: &Hub,
    channel: &Channel,
    topic: &Topic,
    attributes: Attributes,
) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    if attributes.user_count && channel.kind() == ChannelKind::Presence {
        let users = occupancy::users(hub, topic).await.map_err(broker_error)?;
        out.insert(String::from("user_count"), json!(users.len()));
    }
    if attributes.subscription_count {
        let count = occupancy::subscription_count(hub, topic)
            .await
            .map_err(broker_error)?;
        out.insert(String::from("subscription_count"), json!(count));
    }
    Ok(out)
}

/// The answer when the broker cannot count subscribers or list members: 503.
pub(crate) fn broker_error(err: BrokerError) -> ApiError {
    ApiError::with(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("The broker failed: {err}"),
    )
}

/// A channel name from a path or a body, checked against the grammar and the app.
pub(crate) fn channel(app: &PusherApp, name: &str) -> Result<Channel, ApiError> {
    let channel = Channel::parse(name)
        .map_err(|err| ApiError::bad_request(format!("Invalid channel name {name:?}: {err}")))?;
    if !app.fits(&channel) {
        return Err(ApiError::bad_request(format!(
            "Invalid channel name {name:?}: at most {} characters",
            app.limits.max_channel_name
        )));
    }
    Ok(channel)
}

/// `GET /apps/{app_id}/channels`: `{"channels":{NAME:{…},…}}`, the occupied
/// channels whose names start with `filter_by_prefix`, with `user_count` when
/// `info=user_count` (which needs a `presence-` prefix).
pub(crate) async fn list(
    State(pusher): State<Pusher>,
    Path(app_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, Some(&app_id), request).await?;
    let prefix = call.query.get("filter_by_prefix").unwrap_or("");
    let attributes = Attributes::parse(call.query.get("info"))?;
    if attributes.user_count && !prefix.starts_with("presence-") {
        return Err(ApiError::bad_request(
            "info=user_count is only for presence channels: add filter_by_prefix=presence-",
        ));
    }
    let hub = pusher.hub();
    let mut channels = Map::new();
    let occupied = occupancy::occupied(hub, &call.app)
        .await
        .map_err(broker_error)?;
    for (channel, _) in occupied {
        if !channel.as_str().starts_with(prefix) {
            continue;
        }
        let topic = call.app.topic(&channel);
        let info = info(hub, &channel, &topic, attributes).await?;
        channels.insert(channel.as_str().to_owned(), Value::Object(info));
    }
    Ok(json(&json!({ "channels": channels })))
}

/// `GET /apps/{app_id}/channels/{channel_name}`: `{"occupied":…}` and the
/// attributes `info` asks for (`user_count` only of a presence channel).
pub(crate) async fn one(
    State(pusher): State<Pusher>,
    Path((app_id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, Some(&app_id), request).await?;
    let channel = channel(&call.app, &name)?;
    let attributes = Attributes::parse(call.query.get("info"))?;
    if attributes.user_count && channel.kind() != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "info=user_count is only for presence channels",
        ));
    }
    let topic = call.app.topic(&channel);
    let hub = pusher.hub();
    let mut out = Map::new();
    let occupied = occupancy::subscription_count(hub, &topic)
        .await
        .map_err(broker_error)?
        > 0;
    out.insert(String::from("occupied"), Value::Bool(occupied));
    out.extend(info(hub, &channel, &topic, attributes).await?);
    Ok(json(&Value::Object(out)))
}

/// `GET /apps/{app_id}/channels/{channel_name}/users`: `{"users":[{"id":…},…]}`,
/// each user of a presence channel once.
pub(crate) async fn users(
    State(pusher): State<Pusher>,
    Path((app_id, name)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, Some(&app_id), request).await?;
    let channel = channel(&call.app, &name)?;
    if channel.kind() != ChannelKind::Presence {
        return Err(ApiError::bad_request(
            "Users are only listed for presence channels",
        ));
    }
    let topic = call.app.topic(&channel);
    let users = occupancy::users(pusher.hub(), &topic)
        .await
        .map_err(broker_error)?;
    let users: Vec<Value> = users.into_iter().map(|id| json!({ "id": id })).collect();
    Ok(json(&json!({ "users": users })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_a_comma_separated_list() {
        let both = Attributes::parse(Some("user_count,subscription_count"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(both.user_count && both.subscription_count);
        assert_eq!(
            Attributes::parse(None).unwrap_or_else(|e| panic!("{e}")),
            Attributes::default()
        );
        let err = Attributes::parse(Some("user_count,colour")).err();
        assert_eq!(err.map(|e| e.status.as_u16()), Some(400));
    }
}
