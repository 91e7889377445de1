//! The Presence error codes and texts (docs/wire.md §3.2), in one place.
//!
//! Every one of them reaches the client as `sgc@presence@error@member@channel` (docs/wire.md §3.6, §5.3
//! item 23), publish errors included.

/// A refusal the server reports to a client, with its wire code and text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("presence error {}: {}", self.code(), self.text())]
pub enum PresenceError {
    /// 1: `member@new` for an id that exists, or from a connection that already has a member.
    MemberExists,
    /// 2: the application denied `member@new` (or the request had no member id).
    NewMemberDenied,
    /// 3: the member is unknown, or belongs to another connection.
    MemberNotFound,
    /// 5: the channel does not exist.
    ChannelNotFound,
    /// 6: the application denied creating the channel.
    NewChannelDenied,
    /// 10: the application denied the join (or the member is in too many channels).
    SubscriptionDenied,
    /// 11: the member is already in the channel.
    SubscriptionExists,
    /// 12: the member is not in the channel.
    SubscriptionNotFound,
    /// 20: the application denied the publish.
    PublishDenied,
    /// 30: the application denied `get@members`. The reference maps no text: `""`.
    SendMembersDenied,
}

impl PresenceError {
    /// Every error, in code order.
    pub const ALL: [PresenceError; 10] = [
        PresenceError::MemberExists,
        PresenceError::NewMemberDenied,
        PresenceError::MemberNotFound,
        PresenceError::ChannelNotFound,
        PresenceError::NewChannelDenied,
        PresenceError::SubscriptionDenied,
        PresenceError::SubscriptionExists,
        PresenceError::SubscriptionNotFound,
        PresenceError::PublishDenied,
        PresenceError::SendMembersDenied,
    ];

    /// The wire code.
    pub fn code(self) -> u32 {
        match self {
            PresenceError::MemberExists => 1,
            PresenceError::NewMemberDenied => 2,
            PresenceError::MemberNotFound => 3,
            PresenceError::ChannelNotFound => 5,
            PresenceError::NewChannelDenied => 6,
            PresenceError::SubscriptionDenied => 10,
            PresenceError::SubscriptionExists => 11,
            PresenceError::SubscriptionNotFound => 12,
            PresenceError::PublishDenied => 20,
            PresenceError::SendMembersDenied => 30,
        }
    }

    /// The wire text, exactly as the reference writes it (note the missing period of code 5).
    pub fn text(self) -> &'static str {
        match self {
            PresenceError::MemberExists => "Member already exists.",
            PresenceError::NewMemberDenied => "Create New Member request has been denied.",
            PresenceError::MemberNotFound => "Member not exists.",
            PresenceError::ChannelNotFound => "Channel not exists",
            PresenceError::NewChannelDenied => "Create New Channel request has been denied.",
            PresenceError::SubscriptionDenied => "Create Subscription request has been denied.",
            PresenceError::SubscriptionExists => "Subscription already exists.",
            PresenceError::SubscriptionNotFound => "Subscription not exists.",
            PresenceError::PublishDenied => "Publish Message request has been denied.",
            PresenceError::SendMembersDenied => "",
        }
    }

    /// The error with this wire code.
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_texts_match_the_spec() {
        for e in PresenceError::ALL {
            assert_eq!(PresenceError::from_code(e.code()), Some(e));
        }
        assert_eq!(PresenceError::from_code(4), None);
        assert_eq!(PresenceError::ChannelNotFound.text(), "Channel not exists");
        assert_eq!(PresenceError::SendMembersDenied.text(), "");
    }
}
