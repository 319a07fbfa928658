//! Publishing: `POST /apps/{app_id}/events` (one event on up to
//! `max_channels_per_event` channels) and `POST /apps/{app_id}/batch_events` (up
//! to `max_batch_events` events, each on one channel).
//!
//! Every event of a request is checked (name, data size, channel names,
//! `socket_id`) before the first is published, so a refused request reaches no
//! subscriber. Each event is stored in its channel's topic as an [`Envelope`]
//! (with `exclude` = the `socket_id`), one publish per channel. When the broker
//! fails part-way, the answer is 503 and names the channels already published to
//! (Pusher makes no promise of all-or-nothing either: its SDKs retry nothing).

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

use super::channels::{self, Attributes};
use super::error::ApiError;
use super::{call, json};
use crate::hub::PublishError;
use crate::interop::pusher::app::PusherApp;
use crate::interop::pusher::channel::{Channel, ChannelKind};
use crate::interop::pusher::context::Pusher;
use crate::interop::pusher::event::Envelope;
use crate::interop::pusher::socket_id::SocketId;
use crate::topic::{Data, Topic};

/// The body of `POST /events`.
#[derive(Deserialize)]
struct EventBody<'a> {
    name: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    channels: Option<Vec<String>>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

/// The body of `POST /batch_events`.
#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    batch: Option<Vec<BatchEvent<'a>>>,
}

/// One event of a batch.
#[derive(Deserialize)]
struct BatchEvent<'a> {
    name: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
    channel: Option<String>,
    socket_id: Option<String>,
    info: Option<String>,
}

/// An event that passed every check: its topic message and where it goes.
struct Checked {
    channels: Vec<(Channel, Topic)>,
    data: Data,
    attributes: Attributes,
}

/// `POST /apps/{app_id}/events`: `{"name","data","channels"|"channel",
/// "socket_id"?,"info"?}`; answers `{}`, or `{"channels":{NAME:{…}}}` when `info`
/// asks for attributes.
pub(crate) async fn events(
    State(pusher): State<Pusher>,
    Path(app_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, Some(&app_id), request).await?;
    let body: EventBody<'_> = serde_json::from_slice(&call.body)
        .map_err(|err| ApiError::bad_request(format!("Invalid JSON body: {err}")))?;
    let names = match (body.channels, body.channel) {
        (Some(channels), _) => channels,
        (None, Some(channel)) => vec![channel],
        (None, None) => {
            return Err(ApiError::bad_request(
                "Missing parameter: channels (or channel)",
            ));
        }
    };
    let event = check(
        &call.app,
        body.name.as_deref(),
        body.data,
        &names,
        body.socket_id.as_deref(),
        body.info.as_deref(),
    )?;
    publish(&pusher, std::slice::from_ref(&event)).await?;
    if !event.attributes.any() {
        return Ok(json(&json!({})));
    }
    Ok(json(&json!({ "channels": info(&pusher, &event).await? })))
}

/// `POST /apps/{app_id}/batch_events`: `{"batch":[{"name","data","channel",
/// "socket_id"?,"info"?},…]}`; answers `{}`, or `{"batch":[{…},…]}` (one object
/// per event, in order) when an event's `info` asks for attributes.
pub(crate) async fn batch_events(
    State(pusher): State<Pusher>,
    Path(app_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, Some(&app_id), request).await?;
    let body: BatchBody<'_> = serde_json::from_slice(&call.body)
        .map_err(|err| ApiError::bad_request(format!("Invalid JSON body: {err}")))?;
    let Some(batch) = body.batch else {
        return Err(ApiError::bad_request("Missing parameter: batch"));
    };
    let max = call.app.limits.max_batch_events;
    if batch.len() > max {
        return Err(ApiError::bad_request(format!(
            "Batch too large: {} events; at most {max}",
            batch.len()
        )));
    }
    let mut checked = Vec::with_capacity(batch.len());
    for (i, event) in batch.iter().enumerate() {
        let Some(channel) = &event.channel else {
            return Err(ApiError::bad_request(format!(
                "Batch event {i}: missing parameter: channel"
            )));
        };
        let event = check(
            &call.app,
            event.name.as_deref(),
            event.data,
            std::slice::from_ref(channel),
            event.socket_id.as_deref(),
            event.info.as_deref(),
        )
        .map_err(|err| ApiError::with(err.status, format!("Batch event {i}: {}", err.message)))?;
        checked.push(event);
    }
    publish(&pusher, &checked).await?;
    if !checked.iter().any(|e| e.attributes.any()) {
        return Ok(json(&json!({})));
    }
    let mut answers = Vec::with_capacity(checked.len());
    for event in &checked {
        let infos = info(&pusher, event).await?;
        let one = infos
            .into_iter()
            .next()
            .map_or(Value::Object(Map::new()), |(_, v)| v);
        answers.push(one);
    }
    Ok(json(&json!({ "batch": answers })))
}

/// Checks one event against `app`'s limits and builds its topic message.
fn check(
    app: &PusherApp,
    name: Option<&str>,
    data: Option<&RawValue>,
    channel_names: &[String],
    socket_id: Option<&str>,
    info: Option<&str>,
) -> Result<Checked, ApiError> {
    let limits = &app.limits;
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("Missing parameter: name"))?;
    if name.len() > limits.max_event_name {
        return Err(ApiError::bad_request(format!(
            "Event name too long: {} characters; at most {}",
            name.len(),
            limits.max_event_name
        )));
    }
    let data = data.ok_or_else(|| ApiError::bad_request("Missing parameter: data"))?;
    // The size Pusher limits is that of the data string (or, for data that is not
    // a string, of its JSON text).
    let size = serde_json::from_str::<String>(data.get()).map_or(data.get().len(), |s| s.len());
    if size > limits.max_event_size {
        return Err(ApiError::too_large(format!(
            "Event data too large: {size} bytes; at most {}",
            limits.max_event_size
        )));
    }
    if channel_names.is_empty() {
        return Err(ApiError::bad_request("Missing parameter: channels"));
    }
    if channel_names.len() > limits.max_channels_per_event {
        return Err(ApiError::bad_request(format!(
            "Too many channels: {}; at most {}",
            channel_names.len(),
            limits.max_channels_per_event
        )));
    }
    let mut channels: Vec<(Channel, Topic)> = Vec::with_capacity(channel_names.len());
    for name in channel_names {
        let channel = channels::channel(app, name)?;
        if !channels.iter().any(|(c, _)| *c == channel) {
            let topic = app.topic(&channel);
            channels.push((channel, topic));
        }
    }
    if channels.len() > 1
        && channels
            .iter()
            .any(|(c, _)| c.kind() == ChannelKind::PrivateEncrypted)
    {
        return Err(ApiError::bad_request(
            "An event on an encrypted channel can only be sent to that one channel",
        ));
    }
    if let Some(id) = socket_id
        && !SocketId::is_valid(id)
    {
        return Err(ApiError::bad_request(format!("Invalid socket_id {id:?}")));
    }
    let attributes = Attributes::parse(info)?;
    let mut envelope = Envelope::of(name, data.to_owned());
    envelope.exclude = socket_id.map(str::to_owned);
    let data = envelope
        .to_data()
        .map_err(|err| ApiError::bad_request(format!("Invalid data: {err}")))?;
    Ok(Checked {
        channels,
        data,
        attributes,
    })
}

/// Publishes every checked event on each of its channels, in order.
async fn publish(pusher: &Pusher, events: &[Checked]) -> Result<(), ApiError> {
    let mut done: Vec<&str> = Vec::new();
    for event in events {
        for (channel, topic) in &event.channels {
            if let Err(err) = pusher.hub().publish(topic, event.data.clone()).await {
                let status = match err {
                    PublishError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                    PublishError::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
                };
                let sent = if done.is_empty() {
                    String::from("nothing was published")
                } else {
                    format!("already published to {}", done.join(", "))
                };
                return Err(ApiError::with(
                    status,
                    format!("Could not publish to {channel}: {err} ({sent})"),
                ));
            }
            done.push(channel.as_str());
        }
    }
    Ok(())
}

/// `{NAME:{…}}`: the attributes an event asked for, of each of its channels.
async fn info(pusher: &Pusher, event: &Checked) -> Result<Map<String, Value>, ApiError> {
    let mut out = Map::new();
    for (channel, topic) in &event.channels {
        let info = channels::info(pusher.hub(), channel, topic, event.attributes).await?;
        out.insert(channel.as_str().to_owned(), Value::Object(info));
    }
    Ok(out)
}
