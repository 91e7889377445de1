//! Property tests of the pure roster against a simple model: after any sequence of adds, joins,
//! leaves, removals, disconnects and node purges, the roster equals the model (no ghost member,
//! membership or channel), its indexes agree, and every change names exactly the local
//! connections the model says must hear it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use wscluster::internals::hub::roster::{
    AddError, JoinError, Joined, LeaveError, Left, Member, Origin, RemoteOrigin, Roster,
    RosterEvent,
};

#[derive(Debug, Clone)]
enum Op {
    AddLocal(u64, u8),
    AddRemote(u8, u64, u8),
    Join(u8, u8),
    Leave(u8, u8),
    Remove(u8),
    Disconnect(u64),
    Purge(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4u64, 0..8u8).prop_map(|(c, i)| Op::AddLocal(c, i)),
        (0..3u8, 0..2u64, 0..8u8).prop_map(|(n, inc, i)| Op::AddRemote(n, inc, i)),
        (0..8u8, 0..4u8).prop_map(|(i, c)| Op::Join(i, c)),
        (0..8u8, 0..4u8).prop_map(|(i, c)| Op::Leave(i, c)),
        (0..8u8).prop_map(Op::Remove),
        (0..4u64).prop_map(Op::Disconnect),
        (0..3u8).prop_map(Op::Purge),
    ]
}

fn id(i: u8) -> String {
    format!("m{i}")
}
fn ch(c: u8) -> String {
    format!("c{c}")
}
fn node(n: u8) -> String {
    format!("n{n}")
}

/// The model: members in arrival order with their origin and channels.
#[derive(Default)]
struct Model {
    order: Vec<String>,
    members: BTreeMap<String, (Origin, BTreeSet<String>)>,
}

impl Model {
    fn local(&self, filter: impl Fn(&BTreeSet<String>) -> bool) -> BTreeSet<u64> {
        self.members
            .values()
            .filter(|(_, chs)| filter(chs))
            .filter_map(|(o, _)| match o {
                Origin::Local(k) => Some(*k),
                Origin::Remote(_) => None,
            })
            .collect()
    }
    fn all_local(&self) -> BTreeSet<u64> {
        self.local(|_| true)
    }
    fn channel_local(&self, c: &str) -> BTreeSet<u64> {
        self.local(|chs| chs.contains(c))
    }
    fn channel_exists(&self, c: &str) -> bool {
        self.members.values().any(|(_, chs)| chs.contains(c))
    }
    /// The events removing `id` must produce.
    fn remove(&mut self, id: &str) -> Vec<String> {
        let Some((_, chs)) = self.members.remove(id) else {
            return vec![];
        };
        self.order.retain(|x| x != id);
        let mut out: Vec<String> = chs
            .iter()
            .map(|c| {
                let freed = !self.channel_exists(c);
                format!("cmr {id} {c} {freed} {:?}", self.channel_local(c))
            })
            .collect();
        out.push(format!("mr {id} {:?}", self.all_local()));
        out
    }
}

fn describe(events: Vec<RosterEvent>) -> Vec<String> {
    events
        .into_iter()
        .map(|e| match e {
            RosterEvent::ChannelMemberRemoved {
                member,
                channel,
                freed,
                recipients,
            } => format!(
                "cmr {} {channel} {freed} {:?}",
                member.id,
                recipients.into_iter().collect::<BTreeSet<_>>()
            ),
            RosterEvent::MemberRemoved {
                member, recipients, ..
            } => format!(
                "mr {} {:?}",
                member.id,
                recipients.into_iter().collect::<BTreeSet<_>>()
            ),
        })
        .collect()
}

fn set(v: Vec<u64>) -> BTreeSet<u64> {
    v.into_iter().collect()
}

fn step(r: &mut Roster, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::AddLocal(conn, i) => {
            let (id, conn) = (id(*i), *conn);
            let got = r.add_member(
                Arc::new(Member::new(id.as_str(), "n", "")),
                Origin::Local(conn),
            );
            let has_conn = model
                .members
                .iter()
                .find(|(_, (o, _))| *o == Origin::Local(conn))
                .map(|(id, _)| Arc::<str>::from(id.as_str()));
            if model.members.contains_key(&id) {
                prop_assert_eq!(got, Err(AddError::Exists));
            } else if let Some(existing) = has_conn {
                prop_assert_eq!(got, Err(AddError::ConnectionHasMember(existing)));
            } else {
                model
                    .members
                    .insert(id.clone(), (Origin::Local(conn), BTreeSet::new()));
                model.order.push(id);
                prop_assert_eq!(got.map(set), Ok(model.all_local()));
            }
        }
        Op::AddRemote(n, inc, i) => {
            let id = id(*i);
            let origin = Origin::Remote(RemoteOrigin {
                node_id: node(*n).into(),
                incarnation: *inc,
            });
            let got = r.add_member(Arc::new(Member::new(id.as_str(), "n", "")), origin.clone());
            if model.members.contains_key(&id) {
                prop_assert_eq!(got, Err(AddError::Exists));
            } else {
                model.members.insert(id.clone(), (origin, BTreeSet::new()));
                model.order.push(id);
                prop_assert_eq!(got.map(set), Ok(model.all_local()));
            }
        }
        Op::Join(i, c) => {
            let (id, c) = (id(*i), ch(*c));
            let got = r.join(&id, &c);
            let created = !model.channel_exists(&c);
            match model.members.get_mut(&id) {
                None => prop_assert_eq!(got, Err(JoinError::UnknownMember)),
                Some((_, chs)) if chs.contains(&c) => {
                    prop_assert_eq!(got, Err(JoinError::AlreadyJoined))
                }
                Some((_, chs)) => {
                    chs.insert(c.clone());
                    let want = model.channel_local(&c);
                    let got = got.map(
                        |Joined {
                             created,
                             recipients,
                         }| (created, set(recipients)),
                    );
                    prop_assert_eq!(got, Ok((created, want)));
                }
            }
        }
        Op::Leave(i, c) => {
            let (id, c) = (id(*i), ch(*c));
            let got = r.leave(&id, &c);
            let exists = model.channel_exists(&c);
            match model.members.get_mut(&id) {
                None => prop_assert_eq!(got, Err(LeaveError::UnknownMember)),
                Some(_) if !exists => prop_assert_eq!(got, Err(LeaveError::UnknownChannel)),
                Some((_, chs)) if !chs.contains(&c) => {
                    prop_assert_eq!(got, Err(LeaveError::NotJoined))
                }
                Some((_, chs)) => {
                    chs.remove(&c);
                    let freed = !model.channel_exists(&c);
                    let got = got.map(|Left { freed, recipients }| (freed, set(recipients)));
                    prop_assert_eq!(got, Ok((freed, model.channel_local(&c))));
                }
            }
        }
        Op::Remove(i) => {
            let id = id(*i);
            let got = describe(r.remove_member(&id));
            prop_assert_eq!(got, model.remove(&id));
        }
        Op::Disconnect(conn) => {
            let got = describe(r.remove_connection(*conn));
            let id = model
                .members
                .iter()
                .find(|(_, (o, _))| *o == Origin::Local(*conn))
                .map(|(id, _)| id.clone());
            let want = id.map(|id| model.remove(&id)).unwrap_or_default();
            prop_assert_eq!(got, want);
            prop_assert!(
                r.member_of_connection(*conn).is_none(),
                "ghost after disconnect"
            );
        }
        Op::Purge(n) => {
            let got = describe(r.purge_node(&node(*n)));
            let ids: Vec<String> = model
                .order
                .iter()
                .filter(|id| {
                    matches!(&model.members[*id].0, Origin::Remote(r) if *r.node_id == *node(*n))
                })
                .cloned()
                .collect();
            let want: Vec<String> = ids.iter().flat_map(|id| model.remove(id)).collect();
            prop_assert_eq!(got, want);
            prop_assert!(r.node_members(&node(*n)).is_empty(), "ghost after purge");
            prop_assert!(
                r.members().iter().all(|m| !matches!(r.origin(&m.id), Some(Origin::Remote(o)) if *o.node_id == *node(*n))),
                "ghost after purge"
            );
            prop_assert_eq!(r.node_incarnation(&node(*n)), None);
        }
    }
    Ok(())
}

fn same(r: &Roster, model: &Model) -> Result<(), TestCaseError> {
    r.check_consistency().map_err(TestCaseError::fail)?;
    // The union: every member, local and remote, in arrival order.
    let ids: Vec<String> = r.members().iter().map(|m| m.id.to_string()).collect();
    prop_assert_eq!(&ids, &model.order);
    for (id, (origin, chs)) in &model.members {
        prop_assert_eq!(r.origin(id), Some(origin));
        let got: BTreeSet<String> = r.channels_of(id).iter().map(|c| c.to_string()).collect();
        prop_assert_eq!(&got, chs);
    }
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (_, chs) in model.members.values() {
        for c in chs {
            *counts.entry(c.clone()).or_default() += 1;
        }
    }
    let got: BTreeMap<String, usize> = r
        .channels()
        .into_iter()
        .map(|(c, n)| (c.to_string(), n))
        .collect();
    prop_assert_eq!(&got, &counts);
    for c in counts.keys() {
        prop_assert_eq!(set(r.channel_connections(c)), model.channel_local(c));
        let members: Vec<String> = r
            .channel_members(c)
            .unwrap_or_default()
            .iter()
            .map(|m| m.id.to_string())
            .collect();
        prop_assert_eq!(members.len(), counts[c]);
    }
    prop_assert_eq!(set(r.local_connections()), model.all_local());
    let local: Vec<String> = r
        .local_snapshot()
        .iter()
        .map(|(m, _)| m.id.to_string())
        .collect();
    let want: Vec<String> = model
        .order
        .iter()
        .filter(|id| matches!(model.members[*id].0, Origin::Local(_)))
        .cloned()
        .collect();
    prop_assert_eq!(local, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roster_matches_the_model_after_any_sequence(ops in prop::collection::vec(op(), 1..80)) {
        let mut r = Roster::new();
        let mut model = Model::default();
        for op in &ops {
            step(&mut r, &mut model, op)?;
            same(&r, &model)?;
        }
        // Tear everything down: every connection closes, every node dies. Nothing survives.
        for conn in 0..4 {
            step(&mut r, &mut model, &Op::Disconnect(conn))?;
        }
        for n in 0..3 {
            step(&mut r, &mut model, &Op::Purge(n))?;
        }
        same(&r, &model)?;
        prop_assert_eq!(r.member_count(), 0);
        prop_assert_eq!(r.channel_count(), 0);
    }
}

/// Hand-written cases of the same rules, readable as examples.
mod examples {
    use std::sync::Arc;

    use bytes::Bytes;
    use wscluster::internals::hub::roster::*;

    fn m(id: &str) -> Arc<Member> {
        Arc::new(Member::new(id, format!("n-{id}"), ""))
    }

    fn remote(node: &str, inc: u64) -> Origin {
        Origin::Remote(RemoteOrigin {
            node_id: node.into(),
            incarnation: inc,
        })
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort_unstable();
        v
    }

    #[test]
    fn member_new_reaches_every_local_member_including_itself() {
        let mut r = Roster::new();
        assert_eq!(r.add_member(m("a"), Origin::Local(1)), Ok(vec![1]));
        assert_eq!(
            sorted(r.add_member(m("b"), Origin::Local(2)).unwrap_or_default()),
            vec![1, 2]
        );
        assert_eq!(
            sorted(r.add_member(m("x"), remote("n2", 7)).unwrap_or_default()),
            vec![1, 2]
        );
        assert_eq!(
            r.add_member(m("a"), Origin::Local(3)),
            Err(AddError::Exists)
        );
        assert_eq!(
            r.add_member(m("c"), Origin::Local(1)),
            Err(AddError::ConnectionHasMember("a".into()))
        );
        r.check_consistency().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn channels_are_created_on_first_join_and_freed_when_empty() {
        let mut r = Roster::new();
        r.add_member(m("a"), Origin::Local(1)).ok();
        r.add_member(m("b"), Origin::Local(2)).ok();
        assert_eq!(
            r.join("a", "c"),
            Ok(Joined {
                created: true,
                recipients: vec![1]
            })
        );
        let j = r.join("b", "c").unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!j.created);
        assert_eq!(sorted(j.recipients), vec![1, 2]);
        assert_eq!(r.join("b", "c"), Err(JoinError::AlreadyJoined));
        assert_eq!(r.join("zz", "c"), Err(JoinError::UnknownMember));
        assert_eq!(r.leave("a", "nope"), Err(LeaveError::UnknownChannel));
        assert_eq!(
            r.leave("a", "c"),
            Ok(Left {
                freed: false,
                recipients: vec![2]
            })
        );
        assert_eq!(r.leave("a", "c"), Err(LeaveError::NotJoined));
        assert_eq!(
            r.leave("b", "c"),
            Ok(Left {
                freed: true,
                recipients: vec![]
            })
        );
        assert!(!r.has_channel("c"));
        r.check_consistency().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn removal_emits_channel_removes_then_member_remove() {
        let mut r = Roster::new();
        r.add_member(m("a"), Origin::Local(1)).ok();
        r.add_member(m("b"), Origin::Local(2)).ok();
        r.join("a", "c1").ok();
        r.join("a", "c2").ok();
        r.join("b", "c2").ok();
        let ev = r.remove_connection(1);
        assert_eq!(ev.len(), 3);
        assert!(
            matches!(&ev[0], RosterEvent::ChannelMemberRemoved { channel, freed: true, recipients, .. }
            if &**channel == "c1" && recipients.is_empty())
        );
        assert!(
            matches!(&ev[1], RosterEvent::ChannelMemberRemoved { channel, freed: false, recipients, .. }
            if &**channel == "c2" && recipients == &vec![2])
        );
        assert!(
            matches!(&ev[2], RosterEvent::MemberRemoved { member, recipients, .. }
            if &*member.id == "a" && recipients == &vec![2])
        );
        assert!(r.remove_connection(1).is_empty());
        r.check_consistency().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn purge_node_removes_only_that_nodes_replicas() {
        let mut r = Roster::new();
        r.add_member(m("a"), Origin::Local(1)).ok();
        r.add_member(m("x"), remote("n2", 7)).ok();
        r.add_member(m("y"), remote("n2", 7)).ok();
        r.add_member(m("z"), remote("n3", 1)).ok();
        r.join("a", "c").ok();
        r.join("x", "c").ok();
        r.join("z", "c").ok();
        assert_eq!(r.node_incarnation("n2"), Some(7));
        let ev = r.purge_node("n2");
        let kinds: Vec<String> = ev
            .iter()
            .map(|e| match e {
                RosterEvent::ChannelMemberRemoved {
                    member,
                    channel,
                    recipients,
                    ..
                } => {
                    format!("cmr {} {} {:?}", member.id, channel, recipients)
                }
                RosterEvent::MemberRemoved {
                    member, recipients, ..
                } => {
                    format!("mr {} {:?}", member.id, recipients)
                }
            })
            .collect();
        assert_eq!(kinds, vec!["cmr x c [1]", "mr x [1]", "mr y [1]"]);
        assert_eq!(r.node_incarnation("n2"), None);
        let ids: Vec<_> = r.members().iter().map(|m| m.id.to_string()).collect();
        assert_eq!(ids, vec!["a", "z"]);
        r.check_consistency().unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn lists_keep_join_order() {
        let mut r = Roster::new();
        for (i, id) in ["c", "a", "b"].iter().enumerate() {
            r.add_member(m(id), Origin::Local(i as u64)).ok();
        }
        r.join("b", "x").ok();
        r.join("c", "x").ok();
        let ids = |v: Vec<Arc<Member>>| v.iter().map(|m| m.id.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(r.members()), vec!["c", "a", "b"]);
        assert_eq!(
            ids(r.channel_members("x").unwrap_or_default()),
            vec!["b", "c"]
        );
        assert_eq!(r.channels(), vec![(Arc::from("x"), 2)]);
    }

    #[test]
    fn entry_is_memoised() {
        let m = Member::new("a", "b", "c");
        let first = m.entry_with(|_| Bytes::from_static(b"1"));
        let second = m.entry_with(|_| Bytes::from_static(b"2"));
        assert_eq!(first, second);
    }
}
