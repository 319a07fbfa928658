//! How a member is kept in Redis: the text stored beside its client id in the
//! info hash and carried in join and leave notices.

use std::sync::Arc;

use crate::topic::{Data, Member};

/// What Redis keeps of a member besides its client id (in the info hash, and after
/// the client id in join and leave notices): `{"user":…,"info":…}`, each `null`
/// when absent.
pub(super) fn stored_member(member: &Member) -> String {
    let user = member
        .user
        .as_deref()
        .and_then(|user| serde_json::to_string(user).ok());
    let mut out = String::from("{\"user\":");
    out.push_str(user.as_deref().unwrap_or("null"));
    out.push_str(",\"info\":");
    out.push_str(member.info.as_ref().map_or("null", Data::as_str));
    out.push('}');
    out
}

/// The member `client` whose [`stored_member`] text is `stored`. Text in the older
/// form (the info alone, or nothing) still reads, as a member without a user.
pub(super) fn member_of(client: &str, stored: &str) -> Member {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Stored<'a> {
        #[serde(borrow)]
        user: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        info: Option<&'a serde_json::value::RawValue>,
    }
    let (user, info) = match serde_json::from_str::<Stored<'_>>(stored) {
        Ok(Stored { user, info }) => (user.map(|u| Arc::from(&*u)), info.map(|i| i.get())),
        Err(_) => (None, Some(stored).filter(|s| !s.is_empty())),
    };
    Member {
        client: Arc::from(client),
        user,
        info: info.and_then(|info| Data::json(info.as_bytes().to_vec()).ok()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_keep_their_user_and_info_in_redis_and_older_entries_still_read() {
        let member = Member {
            client: Arc::from("c1"),
            user: Some(Arc::from("ann \"the\" user")),
            info: Data::json(&b"{\"seat\":[1,2]}"[..]).ok(),
        };
        let back = member_of("c1", &stored_member(&member));
        assert_eq!(back.user, member.user);
        assert_eq!(back.info, member.info);
        let bare = member_of(
            "c2",
            &stored_member(&Member {
                client: Arc::from("c2"),
                user: None,
                info: None,
            }),
        );
        assert_eq!((bare.user, bare.info), (None, None));
        // What nodes stored before users were kept: the info alone, or nothing.
        let old = member_of("c3", "{\"name\":\"bo\"}");
        assert_eq!(old.user, None);
        assert_eq!(
            old.info.map(|i| i.as_str().to_owned()),
            Some(String::from("{\"name\":\"bo\"}"))
        );
        assert_eq!(member_of("c4", "").info, None);
    }
}
