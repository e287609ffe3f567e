//! In-memory store: for tests, what-if runs and hosts that persist elsewhere.

use std::collections::HashMap;
use std::sync::RwLock;

use super::{Commit, CommitError, Receipt, Store, Versioned, VersionedTally};
use crate::error::CrmError;
use crate::member::{Identity, MemberId};
use crate::state::{Event, MemberState};

#[derive(Default)]
struct Inner {
    members: HashMap<MemberId, (MemberState, Vec<Event>)>,
    identities: HashMap<Identity, MemberId>,
    orders: HashMap<String, MemberId>,
    receipt_index: HashMap<String, usize>,
    receipts: Vec<Receipt>,
    tallies: HashMap<String, VersionedTally>,
}

/// A store that keeps everything in process memory behind one lock.
#[derive(Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for MemoryStore {
    fn load(&self, id: &MemberId) -> Result<Option<Versioned>, CrmError> {
        Ok(self.read().members.get(id).map(|(s, ev)| Versioned { state: s.clone(), version: ev.len() as u64 }))
    }

    fn identity_owner(&self, identity: &Identity) -> Result<Option<MemberId>, CrmError> {
        Ok(self.read().identities.get(identity).cloned())
    }

    fn order_owner(&self, order_id: &str) -> Result<Option<MemberId>, CrmError> {
        Ok(self.read().orders.get(order_id).cloned())
    }

    fn receipt(&self, key: &str) -> Result<Option<Receipt>, CrmError> {
        let g = self.read();
        Ok(g.receipt_index.get(key).map(|&i| g.receipts[i].clone()))
    }

    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        let mut g = self.inner.write().unwrap_or_else(|p| p.into_inner());
        // Check everything first so a refused commit writes nothing.
        for w in &commit.members {
            let current = g.members.get(&w.state.id).map_or(0, |(_, ev)| ev.len() as u64);
            if current != w.expected_version {
                return Err(CommitError::Stale { member: w.state.id.clone() });
            }
        }
        for t in &commit.tallies {
            if g.tallies.get(&t.key).map_or(0, |v| v.version) != t.expected_version {
                return Err(CommitError::StaleTally { key: t.key.clone() });
            }
        }
        for r in &commit.receipts {
            if g.receipt_index.contains_key(&r.key) {
                return Err(CommitError::DuplicateKey { key: r.key.clone() });
            }
        }
        for (identity, owner) in &commit.identities {
            if let (Some(new), Some(old)) = (owner, g.identities.get(identity)) {
                let released = commit.identities.iter().any(|(i, o)| i == identity && o.is_none());
                if old != new && !released {
                    return Err(CommitError::IdentityTaken { identity: identity.clone(), owner: old.clone() });
                }
            }
        }
        for w in commit.members {
            let entry = g.members.entry(w.state.id.clone()).or_insert_with(|| (w.state.clone(), Vec::new()));
            entry.0 = w.state;
            entry.1.extend(w.events);
        }
        for (identity, owner) in commit.identities {
            match owner {
                Some(m) => g.identities.insert(identity, m),
                None => g.identities.remove(&identity),
            };
        }
        for (order, member) in commit.orders {
            g.orders.insert(order, member);
        }
        for t in commit.tallies {
            g.tallies.insert(t.key, VersionedTally { tally: t.tally, version: t.expected_version + 1 });
        }
        for r in commit.receipts {
            let i = g.receipts.len();
            g.receipt_index.insert(r.key.clone(), i);
            g.receipts.push(r);
        }
        for id in &commit.redact {
            if let Some((_, events)) = g.members.get_mut(id) {
                for e in events.iter_mut() {
                    *e = e.redacted();
                }
            }
            for r in g.receipts.iter_mut().filter(|r| r.member_id.as_ref() == Some(id)) {
                r.command = r.command.redacted();
            }
        }
        Ok(())
    }

    fn tally(&self, key: &str) -> Result<Option<VersionedTally>, CrmError> {
        Ok(self.read().tallies.get(key).copied())
    }

    fn events(&self, id: &MemberId) -> Result<Vec<Event>, CrmError> {
        Ok(self.read().members.get(id).map(|(_, ev)| ev.clone()).unwrap_or_default())
    }

    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let snapshot: Vec<Versioned> = self
            .read()
            .members
            .values()
            .map(|(s, ev)| Versioned { state: s.clone(), version: ev.len() as u64 })
            .collect();
        snapshot.into_iter().try_for_each(visit)
    }

    /// Lends every stored snapshot under the read lock (no copies).
    fn inspect_all(&self, view: &mut dyn FnMut(&MemberState) -> Result<(), CrmError>) -> Result<(), CrmError> {
        self.read().members.values().try_for_each(|(s, _)| view(s))
    }

    /// Lends the stored snapshot under the read lock (no copy).
    fn inspect(&self, id: &MemberId, view: &mut dyn FnMut(&MemberState)) -> Result<bool, CrmError> {
        Ok(self.read().members.get(id).map(|(s, _)| view(s)).is_some())
    }

    /// Checks every snapshot in place under the read lock (no copies).
    fn due_members(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Vec<MemberId>, CrmError> {
        Ok(self
            .read()
            .members
            .iter()
            .filter(|(_, (s, _))| s.next_due_at().is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect())
    }

    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> Result<(), CrmError>) -> Result<(), CrmError> {
        let all = self.read().receipts.clone();
        all.into_iter().try_for_each(visit)
    }
}
