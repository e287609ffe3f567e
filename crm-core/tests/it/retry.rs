//! Optimistic concurrency (`Engine::optimistically`): a commit the store
//! refuses because another writer changed what the command read
//! (`CommitError::Stale`) is decided again from fresh reads and committed
//! once; a store that keeps refusing ends in a conflict after a bounded
//! number of attempts, with nothing written. Every attempt decides inside
//! a read scope and commits outside it.

use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;

use crm_core::segment::SavedSegment;
use crm_core::store::{Commit, CommitError, Receipt, Versioned, VersionedTally};
use crm_core::{Command, CrmError, Engine, Event, Identity, MemberId, MemoryStore, Order, Program, Store};

/// A memory store that refuses the next `refuse` commits as stale.
#[derive(Default)]
struct Refusing {
    inner: MemoryStore,
    refuse: AtomicUsize,
    commits: AtomicUsize,
    open_reads: AtomicIsize,
    /// Commits tried while a read scope was open (there should be none).
    commits_in_reads: AtomicUsize,
    /// Read scopes begun (one per attempt).
    scopes: AtomicUsize,
}

impl Refusing {
    fn with_refusals(n: usize) -> Refusing {
        let r = Refusing::default();
        r.refuse.store(n, Ordering::SeqCst);
        r
    }
}

impl Store for Refusing {
    fn load(&self, id: &MemberId) -> crm_core::Result<Option<Versioned>> {
        self.inner.load(id)
    }
    fn identity_owner(&self, identity: &Identity) -> crm_core::Result<Option<MemberId>> {
        self.inner.identity_owner(identity)
    }
    fn order_owner(&self, order_id: &str) -> crm_core::Result<Option<MemberId>> {
        self.inner.order_owner(order_id)
    }
    fn receipt(&self, key: &str) -> crm_core::Result<Option<Receipt>> {
        self.inner.receipt(key)
    }
    fn commit(&self, commit: Commit) -> Result<(), CommitError> {
        self.commits.fetch_add(1, Ordering::SeqCst);
        if self.open_reads.load(Ordering::SeqCst) != 0 {
            self.commits_in_reads.fetch_add(1, Ordering::SeqCst);
        }
        let refused = self.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if refused {
            return Err(CommitError::Stale { member: MemberId::from("someone") });
        }
        self.inner.commit(commit)
    }
    fn tally(&self, key: &str) -> crm_core::Result<Option<VersionedTally>> {
        self.inner.tally(key)
    }
    fn events(&self, id: &MemberId) -> crm_core::Result<Vec<Event>> {
        self.inner.events(id)
    }
    fn scan(&self, visit: &mut dyn FnMut(Versioned) -> crm_core::Result<()>) -> crm_core::Result<()> {
        self.inner.scan(visit)
    }
    fn receipts(&self, visit: &mut dyn FnMut(Receipt) -> crm_core::Result<()>) -> crm_core::Result<()> {
        self.inner.receipts(visit)
    }
    fn begin_reads(&self) {
        self.scopes.fetch_add(1, Ordering::SeqCst);
        self.open_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.begin_reads();
    }
    fn end_reads(&self) {
        self.open_reads.fetch_sub(1, Ordering::SeqCst);
        self.inner.end_reads();
    }
}

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, day, 12, 0, 0).unwrap()
}

fn order(id: &str, member: &str, day: u32) -> Order {
    Order::paid(id, member, t(day), Decimal::new(12_50, 2))
}

fn engine(refuse: usize) -> Engine<Refusing> {
    Engine::new(Program::default_demo(), Refusing::with_refusals(refuse))
}

fn counts(e: &Engine<Refusing>) -> (usize, usize, usize) {
    let s = e.store();
    assert_eq!(s.open_reads.load(Ordering::SeqCst), 0, "every read scope ends");
    assert_eq!(s.commits_in_reads.load(Ordering::SeqCst), 0, "commits happen outside read scopes");
    (s.commits.load(Ordering::SeqCst), s.scopes.load(Ordering::SeqCst), s.refuse.load(Ordering::SeqCst))
}

#[test]
fn a_stale_command_is_decided_again_and_committed_once() {
    let e = engine(3);
    let cmd = Command::RecordOrder { order: order("o1", "alice", 1) };
    e.execute("order:o1", cmd.clone(), t(1)).unwrap();
    // Three refused, the fourth committed; each attempt read afresh.
    assert_eq!(counts(&e), (4, 4, 0));
    let alice = e.member(&MemberId::from("alice")).unwrap();
    assert_eq!(alice.orders.len(), 1);
    assert_eq!(alice.lots.iter().map(|l| l.remaining).sum::<i64>(), 12);
    // The receipt was committed with it: repeating the key answers from it.
    e.execute("order:o1", cmd, t(1)).unwrap();
    assert_eq!(counts(&e).0, 4, "an answered repeat commits nothing");
}

#[test]
fn a_stale_batch_is_decided_again_whole() {
    let e = engine(2);
    let orders = [order("o1", "alice", 1), order("o2", "bob", 1), order("o3", "alice", 2)];
    let results = e.record_orders(&orders, t(2)).unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(counts(&e), (3, 3, 0));
    assert_eq!(e.member(&MemberId::from("alice")).unwrap().orders.len(), 2);
    assert_eq!(e.member(&MemberId::from("bob")).unwrap().orders.len(), 1);
}

#[test]
fn a_store_that_keeps_refusing_ends_in_a_conflict_with_nothing_written() {
    let e = engine(usize::MAX);
    let err = e.execute("order:o1", Command::RecordOrder { order: order("o1", "alice", 1) }, t(1)).unwrap_err();
    assert!(matches!(err, CrmError::Conflict { .. }), "{err:?}");
    assert!(err.to_string().contains("too many concurrent writers"), "{err}");
    let (commits, scopes, _) = counts(&e);
    assert_eq!((commits, scopes), (16, 16), "a bounded number of attempts");
    assert!(e.store().inner.load(&MemberId::from("alice")).unwrap().is_none());
    assert!(e.store().inner.receipt("order:o1").unwrap().is_none());
}

#[test]
fn a_stale_segment_refresh_is_recorded_once() {
    let e = engine(0);
    e.record_orders(&[order("o1", "alice", 1), order("o2", "bob", 1)], t(1)).unwrap();
    e.store().refuse.store(2, Ordering::SeqCst);
    let rule = crm_core::segment::parse("orders(365d) >= 1").unwrap();
    let mut seg = SavedSegment::new("buyers", rule);
    let changes = e.refresh_segment(&mut seg, t(3)).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(e.store().refuse.load(Ordering::SeqCst), 0, "both refusals were met");
    for m in ["alice", "bob"] {
        let st = e.member(&MemberId::from(m)).unwrap();
        assert!(st.segments.contains("buyers"), "{m}");
        let entered = e.store().inner.events(&MemberId::from(m)).unwrap();
        let recorded = entered.iter().filter(|ev| matches!(ev, Event::SegmentChanged { .. })).count();
        assert_eq!(recorded, 1, "{m}: recorded once");
    }
    counts(&e);
}
