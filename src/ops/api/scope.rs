//! What a server API key may do: its scopes, as the configuration names them.

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Scope {
    /// `POST /api/publish`, `POST /api/broadcast`.
    Publish,
    /// `GET /api/presence`.
    Presence,
    /// `GET /api/channels`.
    Channels,
    /// `POST /api/disconnect`.
    Disconnect,
}

impl Scope {
    /// The scope named `s` in the configuration.
    pub(crate) fn parse(s: &str) -> Option<Scope> {
        Some(match s {
            "publish" => Scope::Publish,
            "presence" => Scope::Presence,
            "channels" => Scope::Channels,
            "disconnect" => Scope::Disconnect,
            _ => return None,
        })
    }

    /// Its name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Scope::Publish => "publish",
            Scope::Presence => "presence",
            Scope::Channels => "channels",
            Scope::Disconnect => "disconnect",
        }
    }
}
