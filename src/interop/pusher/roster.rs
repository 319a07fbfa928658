//! [`Roster`]: one connection's view of a presence channel's members, as Pusher
//! shows them: users, not connections.
//!
//! The hub tracks presence per client (a Pusher socket, a `/ws` connection, an
//! SSE stream…); pusher-js expects users: a user with two sockets in a channel is
//! one member, added when the first joins and removed when the last leaves. A
//! member without a user id (a `/ws` client that did not authenticate) is not
//! shown to pusher-js. Each Pusher presence subscription keeps a roster, seeded
//! from the hub's member list when it subscribes and kept up to date by the
//! hub's join and leave events; the roster answers which of those become
//! `pusher_internal:member_added` / `member_removed` for its client.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::topic::{Data, Member};

/// One user in a roster: its info (from its first client) and its clients.
#[derive(Debug)]
struct User {
    info: Option<Data>,
    clients: BTreeSet<Arc<str>>,
}

/// The members of one presence channel as one connection sees them.
#[derive(Debug, Default)]
pub struct Roster {
    users: BTreeMap<Arc<str>, User>,
    /// Which user each client is (a leave may name only the client).
    clients: HashMap<Arc<str>, Arc<str>>,
}

impl Roster {
    /// The roster of the hub's `members` (in any order, duplicates allowed).
    pub fn new(members: &[Member]) -> Self {
        let mut roster = Self::default();
        for member in members {
            roster.join(member);
        }
        roster
    }

    /// How many users are members.
    pub fn count(&self) -> usize {
        self.users.len()
    }

    /// The members' user ids, in order (what the HTTP API's
    /// `/channels/{name}/users` lists: `Roster::new(&hub.members(&topic).await?)`).
    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(|id| &**id)
    }

    /// Whether `user` is a member.
    pub fn has(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Whether `user` has a client in the channel other than `client`.
    pub fn has_other(&self, user: &str, client: &str) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.clients.iter().any(|c| &**c != client))
    }

    /// `member` joined: `Some(user)` when its user was not a member before
    /// (Pusher's `member_added`).
    pub fn join(&mut self, member: &Member) -> Option<Arc<str>> {
        let user = member.user.as_ref()?;
        self.clients
            .insert(Arc::clone(&member.client), Arc::clone(user));
        let entry = self.users.entry(Arc::clone(user)).or_insert_with(|| User {
            info: member.info.clone(),
            clients: BTreeSet::new(),
        });
        let new = entry.clients.is_empty();
        entry.clients.insert(Arc::clone(&member.client));
        new.then(|| Arc::clone(user))
    }

    /// `member` left: `Some(user)` when that was its user's last client (Pusher's
    /// `member_removed`).
    pub fn leave(&mut self, member: &Member) -> Option<Arc<str>> {
        let user = self
            .clients
            .remove(&member.client)
            .or_else(|| member.user.clone())?;
        let entry = self.users.get_mut(&user)?;
        if !entry.clients.remove(&member.client) {
            return None;
        }
        if entry.clients.is_empty() {
            self.users.remove(&user);
            return Some(user);
        }
        None
    }

    /// The `data` of `pusher_internal:subscription_succeeded` (a JSON object, to
    /// be sent as a string): `{"presence":{"ids":[…],"hash":{id:info},"count":n}}`.
    pub fn subscription_data(&self) -> String {
        let ids: Vec<&str> = self.users.keys().map(|id| &**id).collect();
        let hash: BTreeMap<&str, Option<&RawValue>> = self
            .users
            .iter()
            .map(|(id, user)| (&**id, user.info.as_ref().and_then(raw)))
            .collect();
        serde_json::json!({"presence": {"ids": ids, "hash": hash, "count": ids.len()}}).to_string()
    }

    /// The `data` of `pusher_internal:member_added` for `user` (a JSON object, to
    /// be sent as a string): `{"user_id":…,"user_info":…}`.
    pub fn added_data(&self, user: &str) -> String {
        let info = self
            .users
            .get(user)
            .and_then(|u| u.info.as_ref())
            .and_then(raw);
        serde_json::json!({"user_id": user, "user_info": info}).to_string()
    }

    /// The `data` of `pusher_internal:member_removed` for `user`.
    pub fn removed_data(user: &str) -> String {
        serde_json::json!({ "user_id": user }).to_string()
    }
}

fn raw(data: &Data) -> Option<&RawValue> {
    serde_json::from_str(data.as_str()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(client: &str, user: Option<&str>, info: Option<&str>) -> Member {
        Member {
            client: Arc::from(client),
            user: user.map(Arc::from),
            info: info.map(|i| Data::json(i.to_owned()).unwrap_or_else(|e| panic!("{e}"))),
        }
    }

    #[test]
    fn users_are_members_once_and_clients_without_users_are_not() {
        let roster = Roster::new(&[
            member("1.1", Some("ann"), Some(r#"{"n":1}"#)),
            member("1.2", Some("ann"), Some(r#"{"n":2}"#)),
            member("ws-1", None, None),
            member("ws-2", Some("bob"), None),
        ]);
        assert_eq!(roster.count(), 2);
        assert_eq!(roster.user_ids().collect::<Vec<_>>(), ["ann", "bob"]);
        assert_eq!(
            roster.subscription_data(),
            r#"{"presence":{"ids":["ann","bob"],"hash":{"ann":{"n":1},"bob":null},"count":2}}"#
        );
        assert!(roster.has_other("ann", "1.1") && !roster.has_other("bob", "ws-2"));
    }

    #[test]
    fn added_on_the_first_client_removed_after_the_last() {
        let mut roster = Roster::default();
        let (a1, a2) = (
            member("1.1", Some("ann"), None),
            member("1.2", Some("ann"), None),
        );
        assert_eq!(roster.join(&a1).as_deref(), Some("ann"));
        assert_eq!(roster.join(&a2), None);
        assert_eq!(roster.join(&a2), None, "a repeated join changes nothing");
        assert_eq!(roster.leave(&member("1.1", None, None)), None);
        assert_eq!(roster.leave(&a2).as_deref(), Some("ann"));
        assert_eq!(roster.leave(&a2), None, "a repeated leave changes nothing");
        assert_eq!(roster.join(&member("ws-1", None, None)), None);
        assert_eq!(roster.count(), 0);
        assert_eq!(Roster::removed_data("a\"b"), r#"{"user_id":"a\"b"}"#);
    }
}
