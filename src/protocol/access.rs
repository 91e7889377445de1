//! Channel rules (`[[auth.rules]]`): which identities may subscribe and publish to which channels.
//! Pure logic: the protocols ask [`ChannelRules::allows`] before their application hooks, and a
//! refusal takes the very path of a hook saying no (sgc: dropped silently; Presence: error 10 on a
//! join, error 20 on a publish).
//!
//! - No rules: everything is allowed (the behaviour without this feature).
//! - Otherwise the **first rule that applies to the connection** decides, and a connection no rule
//!   applies to may do nothing. First match (not the union of matching rules) lets an early rule
//!   give one identity fewer rights than a later, general one.
//! - A rule applies to an authenticated connection when `identity` (a `MatchesMask` pattern:
//!   `*`, `?`, `[set]`, case-insensitive) matches its user; omitted, to every authenticated
//!   connection. It applies to connections without a user only when `anonymous = true` (then, with
//!   `identity` omitted, only to them).
//! - With `role` (a mask too), the rule applies only to connections whose token lists a matching
//!   role in its roles claim (`auth.jwt.roles_claim`, default `roles`: a string or an array of
//!   strings); together with `identity`, both must match. Connections without such a claim
//!   (anonymous ones, users of the wire reference's modes) never match a rule with a role.
//! - `subscribe` / `publish` are lists of channel masks (the same matching). An empty list allows
//!   nothing. A publish or broadcast to everyone is the channel `""`, which only `*` matches.

use super::mask::Mask;
use crate::transport::Connection;
pub use crate::transport::auth::ChannelRule;

/// What a connection wants to do on a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Subscribe (sgc) or join (Presence).
    Subscribe,
    /// Publish or broadcast.
    Publish,
}

#[derive(Debug, Clone)]
struct Compiled {
    identity: Option<Mask>,
    role: Option<Mask>,
    anonymous: bool,
    subscribe: Vec<Mask>,
    publish: Vec<Mask>,
}

impl Compiled {
    fn applies(&self, user: Option<&str>, roles: &[&str]) -> bool {
        if let Some(role) = &self.role
            && !roles.iter().any(|r| role.matches(r))
        {
            return false;
        }
        match (user, &self.identity) {
            (None, _) => self.anonymous,
            (Some(u), Some(m)) => m.matches(u),
            (Some(_), None) => !self.anonymous,
        }
    }
}

/// The compiled channel rules.
#[derive(Debug, Clone, Default)]
pub struct ChannelRules {
    rules: Vec<Compiled>,
    roles_claim: String,
    uses_roles: bool,
}

impl ChannelRules {
    /// Compiles `rules`; the error names the first malformed mask (an unclosed `[`).
    pub fn new(rules: &[ChannelRule]) -> Result<Self, String> {
        let mask = |i: usize, field: &str, p: &str| {
            Mask::new(p).ok_or_else(|| format!("auth.rules[{i}].{field}: malformed mask {p:?}"))
        };
        let masks = |i: usize, field: &str, ps: &[String]| {
            ps.iter()
                .map(|p| mask(i, field, p))
                .collect::<Result<Vec<_>, _>>()
        };
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Ok(Compiled {
                    identity: r
                        .identity
                        .as_deref()
                        .map(|p| mask(i, "identity", p))
                        .transpose()?,
                    role: r.role.as_deref().map(|p| mask(i, "role", p)).transpose()?,
                    anonymous: r.anonymous,
                    subscribe: masks(i, "subscribe", &r.subscribe)?,
                    publish: masks(i, "publish", &r.publish)?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            uses_roles: rules.iter().any(|r: &Compiled| r.role.is_some()),
            rules,
            roles_claim: "roles".into(),
        })
    }

    /// Reads roles from the claim `claim` of the connection's token instead of `roles`.
    pub fn with_roles_claim(mut self, claim: &str) -> Self {
        claim.clone_into(&mut self.roles_claim);
        self
    }

    /// [`ChannelRules::allows_with_roles`] for a connection: its user, and its token's roles
    /// (read only when a rule names a role).
    pub fn allows_connection(&self, conn: &Connection, action: Action, channel: &str) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let mut roles: Vec<&str> = Vec::new();
        if self.uses_roles
            && let Some(claim) = conn.claims().and_then(|c| c.get(&self.roles_claim))
        {
            match claim {
                serde_json::Value::String(r) => roles.push(r),
                serde_json::Value::Array(a) => roles.extend(a.iter().filter_map(|v| v.as_str())),
                _ => {}
            }
        }
        self.allows_with_roles(conn.user(), &roles, action, channel)
    }

    /// Whether a connection with `user` and no roles may do `action` on `channel`.
    pub fn allows(&self, user: Option<&str>, action: Action, channel: &str) -> bool {
        self.allows_with_roles(user, &[], action, channel)
    }

    /// Whether there are no rules (everything is allowed).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a connection with `user` (`None`: not authenticated) and token `roles` may do
    /// `action` on the concrete `channel`.
    pub fn allows_with_roles(
        &self,
        user: Option<&str>,
        roles: &[&str],
        action: Action,
        channel: &str,
    ) -> bool {
        if self.rules.is_empty() {
            return true;
        }
        let Some(rule) = self.rules.iter().find(|r| r.applies(user, roles)) else {
            return false;
        };
        let masks = match action {
            Action::Subscribe => &rule.subscribe,
            Action::Publish => &rule.publish,
        };
        masks.iter().any(|m| m.matches(channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::Deserialize;

    fn rule(identity: Option<&str>, anonymous: bool, sub: &[&str], publ: &[&str]) -> ChannelRule {
        ChannelRule {
            identity: identity.map(str::to_owned),
            role: None,
            anonymous,
            subscribe: sub.iter().map(|s| s.to_string()).collect(),
            publish: publ.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn rules(r: &[ChannelRule]) -> ChannelRules {
        ChannelRules::new(r).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn first_matching_rule_decides() {
        let r = rules(&[
            rule(Some("spammer"), false, &["public.*"], &[]),
            rule(Some("admin*"), false, &["*"], &["*"]),
            rule(None, false, &["public.*", "chat.*"], &["chat.*"]),
            rule(None, true, &["public.*"], &[]),
        ]);
        use Action::*;
        assert!(r.allows(Some("admin1"), Publish, "anything"));
        assert!(r.allows(Some("ADMIN"), Publish, ""));
        assert!(r.allows(Some("bob"), Subscribe, "chat.room"));
        assert!(r.allows(Some("bob"), Publish, "Chat.Room"));
        assert!(!r.allows(Some("bob"), Publish, "public.news"));
        assert!(!r.allows(Some("bob"), Publish, ""));
        assert!(!r.allows(Some("spammer"), Publish, "chat.room"));
        assert!(!r.allows(Some("spammer"), Subscribe, "chat.room"));
        assert!(r.allows(Some("spammer"), Subscribe, "public.x"));
        assert!(r.allows(None, Subscribe, "public.x"));
        assert!(!r.allows(None, Subscribe, "chat.x"));
        assert!(!r.allows(None, Publish, "public.x"));
    }

    #[test]
    fn who_a_rule_applies_to() {
        use Action::*;
        let anon_only = rules(&[rule(None, true, &["*"], &[])]);
        assert!(anon_only.allows(None, Subscribe, "a"));
        assert!(!anon_only.allows(Some("bob"), Subscribe, "a"));
        let users_only = rules(&[rule(None, false, &["*"], &[])]);
        assert!(!users_only.allows(None, Subscribe, "a"));
        assert!(users_only.allows(Some("bob"), Subscribe, "a"));
        let both = rules(&[rule(Some("b*"), true, &["*"], &[])]);
        assert!(both.allows(None, Subscribe, "a"));
        assert!(both.allows(Some("bob"), Subscribe, "a"));
        assert!(!both.allows(Some("alice"), Subscribe, "a"));
    }

    #[test]
    fn roles_narrow_a_rule() {
        use Action::*;
        let r = rules(&[
            ChannelRule {
                role: Some("ops-*".into()),
                ..rule(None, false, &["*"], &["*"])
            },
            rule(None, false, &["public"], &[]),
        ]);
        assert!(r.allows_with_roles(Some("bob"), &["x", "OPS-admin"], Publish, "a"));
        assert!(!r.allows_with_roles(Some("bob"), &["x"], Publish, "a"));
        assert!(!r.allows(Some("bob"), Publish, "a"));
        assert!(r.allows(Some("bob"), Subscribe, "public"));
        assert!(!r.allows_with_roles(None, &["ops-admin"], Subscribe, "public"));
    }

    #[test]
    fn roles_come_from_the_configured_claim_of_the_connection() {
        let r = rules(&[ChannelRule {
            role: Some("admin".into()),
            ..rule(None, false, &["*"], &["*"])
        }])
        .with_roles_claim("groups");
        let conn = Connection::detached("A", None);
        assert!(!r.allows_connection(&conn, Action::Publish, "a"));
        assert!(ChannelRules::default().allows_connection(&conn, Action::Publish, "a"));
    }

    #[test]
    fn malformed_masks_are_named() {
        let e = ChannelRules::new(&[rule(None, false, &["ok"], &["[oops"])]).err();
        assert_eq!(
            e.as_deref(),
            Some("auth.rules[0].publish: malformed mask \"[oops\"")
        );
        assert!(ChannelRules::new(&[rule(Some("[x"), false, &[], &[])]).is_err());
        let bad_role = ChannelRule {
            role: Some("[r".into()),
            ..Default::default()
        };
        assert!(ChannelRules::new(&[bad_role]).is_err());
    }

    #[test]
    fn rules_parse_from_toml_and_refuse_typos() {
        #[derive(Deserialize)]
        struct Doc {
            rules: Vec<ChannelRule>,
        }
        let doc: Doc = toml::from_str(
            r#"
            [[rules]]
            identity = "admin*"
            subscribe = ["*"]
            publish = ["*"]
            [[rules]]
            anonymous = true
            subscribe = ["public.*"]
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(doc.rules[0], rule(Some("admin*"), false, &["*"], &["*"]));
        assert_eq!(doc.rules[1], rule(None, true, &["public.*"], &[]));
        assert!(toml::from_str::<Doc>("[[rules]]\nsubscibe = [\"x\"]").is_err());
    }

    proptest! {
        /// No rules allow everything; a single rule for everyone with `*` allows everything; a rule
        /// for everyone with empty lists allows nothing.
        #[test]
        fn extremes(user in proptest::option::of("[a-zA-Z0-9.*?]{0,8}"), ch in "[a-zA-Z0-9.]{0,12}") {
            let u = user.as_deref();
            for a in [Action::Subscribe, Action::Publish] {
                prop_assert!(ChannelRules::default().allows(u, a, &ch));
                let all = rules(&[rule(Some("*"), true, &["*"], &["*"])]);
                prop_assert!(all.allows(u, a, &ch));
                let none = rules(&[rule(Some("*"), true, &[], &[])]);
                prop_assert!(!none.allows(u, a, &ch));
            }
        }

        /// Appending rules never changes the decision for a connection an earlier rule applies to.
        #[test]
        fn later_rules_do_not_matter_once_one_applies(user in "[a-z]{1,6}", ch in "[a-z.]{0,10}",
                                                      sub in proptest::collection::vec("[a-z.*]{0,5}", 0..3)) {
            let subs: Vec<&str> = sub.iter().map(String::as_str).collect();
            let first = rule(Some(&user), false, &subs, &[]);
            let alone = rules(std::slice::from_ref(&first));
            let more = rules(&[first.clone(), rule(None, true, &["*"], &["*"])]);
            for a in [Action::Subscribe, Action::Publish] {
                prop_assert_eq!(alone.allows(Some(&user), a, &ch), more.allows(Some(&user), a, &ch));
            }
        }
    }
}
