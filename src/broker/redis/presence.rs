//! The presence worker: applies joins and leaves in Redis in order, and keeps this
//! node's members alive there (and reaps the members of nodes that died).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::keys::Keys;
use super::member_text::stored_member;
use super::shared::{PresenceOp, Shared};
use crate::clock::ttl_millis;
use crate::sync::lock;
use crate::topic::{Member, Topic};

/// How many presence updates may wait for Redis; beyond that they are dropped (the
/// periodic refresh and the expiry put membership right within one TTL).
pub(super) const PRESENCE_QUEUE: usize = 10_000;

/// Applies joins and leaves in order, and every refresh interval pushes this
/// node's members' deadlines forward and reaps expired members of watched topics.
pub(super) async fn presence_worker(shared: Arc<Shared>, mut ops: mpsc::Receiver<PresenceOp>) {
    let mut refresh = tokio::time::interval(shared.config.refresh_every());
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ttl = ttl_millis(shared.config.presence_ttl);
    let key_ttl = ttl_millis(shared.config.presence_ttl * 2);
    loop {
        tokio::select! {
            op = ops.recv() => {
                let Some(op) = op else { return };
                apply(&shared, op, ttl, key_ttl).await;
            }
            _ = refresh.tick() => {
                // Joins and leaves queued before this tick go first.
                while let Ok(op) = ops.try_recv() {
                    apply(&shared, op, ttl, key_ttl).await;
                }
                refresh_all(&shared, ttl, key_ttl).await;
            }
        }
    }
}

async fn apply(shared: &Shared, op: PresenceOp, ttl: u64, key_ttl: u64) {
    let result = match op {
        PresenceOp::Join(topic, member) => {
            let keys = Keys::of(&topic);
            let mut invocation = shared.scripts.join.key(&keys.members);
            invocation
                .key(&keys.info)
                .arg(&keys.channel)
                .arg(&*member.client)
                .arg(ttl)
                .arg(stored_member(&member))
                .arg(key_ttl);
            shared.run("join", invocation).await
        }
        PresenceOp::Leave(topic, client) => {
            let keys = Keys::of(&topic);
            let mut invocation = shared.scripts.leave.key(&keys.members);
            invocation.key(&keys.info).arg(&keys.channel).arg(&*client);
            shared.run("leave", invocation).await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, "redis: presence update failed; the next refresh repairs it");
    }
}

async fn refresh_all(shared: &Shared, ttl: u64, key_ttl: u64) {
    let mut topics: HashMap<Topic, Vec<Member>> = lock(&shared.watched)
        .keys()
        .map(|topic| (topic.clone(), Vec::new()))
        .collect();
    for (topic, members) in lock(&shared.members).iter() {
        topics
            .entry(topic.clone())
            .or_default()
            .extend(members.values().cloned());
    }
    for (topic, members) in topics {
        let keys = Keys::of(&topic);
        let mut invocation = shared.scripts.refresh.key(&keys.members);
        invocation
            .key(&keys.info)
            .key(&keys.meta)
            .arg(&keys.channel)
            .arg(ttl)
            .arg(key_ttl)
            .arg(shared.meta_ttl());
        for member in &members {
            invocation.arg(&*member.client).arg(stored_member(member));
        }
        if let Err(err) = shared.run("presence refresh", invocation).await {
            tracing::debug!(error = %err, "redis: presence refresh failed");
            return;
        }
    }
}
