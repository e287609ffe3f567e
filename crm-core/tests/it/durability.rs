//! Durability under faults, with real processes.
//!
//! * **Concurrency**: 2 processes x 4 threads earn and redeem on the same 3
//!   members for 3 s, on one SQLite file and on one PostgreSQL schema.
//!   Afterwards every balance equals the sum of its postings, no lot and no
//!   balance ever went below zero (checked event by event), and every
//!   acknowledged command is in the store exactly once.
//! * **Crash safety**: a child process imports orders (one at a time and in
//!   batches) and prints each order id once the call returned; the parent
//!   kills it with SIGKILL at random moments, 20 times, restarting it a few
//!   orders back each time. Every acknowledged order must be present exactly
//!   once, no order may be half applied, and replaying the command log must
//!   rebuild every member.
//!
//! The children are this test binary run again with `CRM_DURABILITY_CHILD`
//! set: [`child_process_entry`] then plays the child's role and exits.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use crm_core::store::Versioned;
use crm_core::{order_key, CrmError, Engine, Event, LotSource, MemberId, MemoryStore, Order, Program, Store};
use rust_decimal::Decimal;

const CHILD_ENV: &str = "CRM_DURABILITY_CHILD";
const STORE_ENV: &str = "CRM_DURABILITY_STORE";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn program() -> Program {
    Program::default_demo()
}

/// A small xorshift generator: no dependency, reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        Rng(nanos ^ (u64::from(std::process::id()) << 32) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ----- stores by name, so a child can open the parent's ---------------------------

/// `sqlite:<path>` or `postgres:<schema>` (URL from `CRM_TEST_POSTGRES_URL`).
fn open(spec: &str) -> Arc<dyn Store> {
    let (kind, arg) = spec.split_once(':').expect("store spec");
    match kind {
        #[cfg(feature = "sqlite")]
        "sqlite" => Arc::new(crm_core::SqliteStore::open(arg).expect("open sqlite")),
        #[cfg(feature = "postgres")]
        "postgres" => {
            use crm_core::store::postgres::{PostgresOptions, PostgresStore};
            let url = std::env::var("CRM_TEST_POSTGRES_URL").expect("CRM_TEST_POSTGRES_URL");
            Arc::new(
                PostgresStore::connect_with(&url, PostgresOptions::new().schema(arg).pool_size(4)).expect("connect"),
            )
        }
        other => panic!("unknown store kind {other}"),
    }
}

/// Where a test's store lives, removed when dropped.
struct Place {
    spec: String,
    cleanup: Box<dyn FnMut()>,
}

impl Drop for Place {
    fn drop(&mut self) {
        (self.cleanup)();
    }
}

#[cfg(feature = "sqlite")]
fn sqlite_place(tag: &str) -> Place {
    let dir = std::env::temp_dir().join(format!(
        "crm-durability-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = format!("sqlite:{}", dir.join("crm.db").display());
    Place { spec, cleanup: Box::new(move || drop(std::fs::remove_dir_all(&dir))) }
}

#[cfg(feature = "postgres")]
fn postgres_place(tag: &str) -> Option<Place> {
    let url = crate::postgres::url()?;
    let schema = crate::postgres::fresh_schema(tag);
    let spec = format!("postgres:{schema}");
    Some(Place {
        spec,
        cleanup: Box::new(move || {
            let store = crm_core::store::postgres::PostgresStore::connect_with(
                &url,
                crm_core::store::postgres::PostgresOptions::new().schema(&schema),
            );
            if let Ok(s) = store {
                let _ = s.drop_schema();
            }
        }),
    })
}

// ----- the child -------------------------------------------------------------------

/// Not a test of its own: the entry point of the child processes.
#[test]
fn child_process_entry() {
    let Ok(role) = std::env::var(CHILD_ENV) else { return };
    let spec = std::env::var(STORE_ENV).expect("store spec");
    let store = open(&spec);
    let code = match role.split(':').collect::<Vec<_>>().as_slice() {
        ["import", start] => import_child(store, start.parse().unwrap()),
        ["churn", id, millis] => churn_child(store, id, Duration::from_millis(millis.parse().unwrap())),
        other => panic!("unknown child role {other:?}"),
    };
    std::process::exit(code);
}

fn order(i: u64) -> Order {
    // 10.00 to 59.99: 10 to 59 points.
    let cents = 1_000 + (i * 7_919 % 5_000) as i64;
    Order::paid(format!("o-{i}"), format!("m{}", i % 5), now(), Decimal::new(cents, 2))
}

/// Imports orders from `start` on, forever: one at a time, then a batch of
/// five, and so on. Prints `ACK <order id>` once a call has returned.
fn import_child(store: Arc<dyn Store>, start: u64) -> i32 {
    let engine = Engine::new(program(), store);
    let mut i = start;
    loop {
        if i % 2 == 0 {
            engine.record_order(order(i), now()).expect("record_order");
            println!("ACK o-{i}");
            i += 1;
        } else {
            let batch: Vec<_> = (i..i + 5).map(order).collect();
            let results = engine.record_orders(&batch, now()).expect("record_orders");
            for (o, r) in batch.iter().zip(results) {
                r.expect("order in batch");
                println!("ACK {}", o.id);
            }
            i += 5;
        }
    }
}

/// 4 threads earning and redeeming on members m0..m2 until `run_for` has
/// passed. Prints `EARN <key> <member> <points>`, `REDEEM <key> <member>
/// <points>`, `INSUFFICIENT <key>` or `CONFLICT <key>` per command.
fn churn_child(store: Arc<dyn Store>, id: &str, run_for: Duration) -> i32 {
    let engine = Engine::new(program(), store);
    let deadline = Instant::now() + run_for;
    std::thread::scope(|scope| {
        for t in 0..4u64 {
            let engine = &engine;
            scope.spawn(move || {
                let mut rng = Rng::seeded();
                rng.0 ^= (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut i = 0;
                while Instant::now() < deadline {
                    i += 1;
                    let member = format!("m{}", rng.below(3));
                    if rng.below(5) < 2 {
                        let key = format!("c{id}-t{t}-o{i}");
                        let points = 10 + rng.below(40) as i64;
                        let o = Order::paid(key.clone(), member.as_str(), now(), Decimal::new(points * 100, 2));
                        match engine.record_order(o, now()) {
                            Ok(_) => println!("EARN {} {member} {points}", order_key(&key)),
                            Err(CrmError::Conflict { .. }) => println!("CONFLICT {key}"),
                            Err(e) => panic!("record_order {key}: {e}"),
                        }
                    } else {
                        let key = format!("c{id}-t{t}-r{i}");
                        let points = 5 + rng.below(60) as i64;
                        match engine.redeem(&MemberId(member.clone()), "reward", points, &key, now()) {
                            Ok(_) => println!("REDEEM {key} {member} {points}"),
                            Err(CrmError::InsufficientPoints { .. }) => println!("INSUFFICIENT {key}"),
                            Err(CrmError::Conflict { .. }) => println!("CONFLICT {key}"),
                            Err(e) => panic!("redeem {key}: {e}"),
                        }
                    }
                }
            });
        }
    });
    0
}

fn spawn_child(role: &str, spec: &str) -> std::process::Child {
    Process::new(std::env::current_exe().unwrap())
        .args(["durability::child_process_entry", "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(CHILD_ENV, role)
        .env(STORE_ENV, spec)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

// ----- ledger checks ----------------------------------------------------------------

use crate::props::members_of as members;

/// Checks one member's ledger event by event: no lot below zero or above its
/// grant, no redemption without the points, the balance never below zero,
/// and the final balance equal to the sum of the postings and of the open
/// lots. Returns the order ids the member recorded and its posted balance.
fn check_member(engine: &Engine<Arc<dyn Store>>, v: &Versioned) -> (Vec<String>, i64) {
    let id = &v.state.id;
    let events = engine.store().events(id).unwrap();
    assert_eq!(v.version, events.len() as u64, "{id}: version is the number of events");
    let mut lots: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut posted = 0i64;
    let mut orders = Vec::new();
    let mut earned_for: BTreeSet<String> = BTreeSet::new();
    for (n, e) in events.iter().enumerate() {
        match e {
            Event::OrderRecorded { order, .. } => orders.push(order.order.id.clone()),
            Event::PointsEarned { lot, .. } => {
                assert!(lot.granted > 0 && lot.remaining == lot.granted, "{id} #{n}: new lot {lot:?}");
                lots.insert(lot.id.clone(), (lot.granted, lot.granted));
                posted += lot.granted;
                if let LotSource::Order { order_id, .. } = &lot.source {
                    earned_for.insert(order_id.clone());
                }
            }
            Event::PointsRedeemed(r) => {
                let (points, allocations) = (&r.points, &r.allocations);
                assert_eq!(allocations.iter().map(|a| a.points).sum::<i64>(), *points, "{id} #{n}: allocations");
                for a in allocations {
                    let lot = lots.get_mut(&a.lot_id).unwrap_or_else(|| panic!("{id} #{n}: unknown lot {}", a.lot_id));
                    lot.1 -= a.points;
                    assert!(a.points > 0 && lot.1 >= 0, "{id} #{n}: lot {} went to {}", a.lot_id, lot.1);
                }
                posted -= points;
            }
            Event::MemberCreated { .. } | Event::RuleUsage { .. } | Event::OrderStatusChanged { .. } => {}
            other => panic!("{id} #{n}: unexpected event {other:?}"),
        }
        assert!(posted >= 0, "{id} went below zero after event #{n}: {posted}");
    }
    let balance = engine.balance(id, "reward", now()).unwrap();
    assert_eq!(balance.total(), posted, "{id}: balance equals the sum of its postings");
    assert_eq!(balance.debt, 0);
    let open: i64 = v.state.lots.iter().map(|l| l.remaining).sum();
    assert_eq!(open, posted, "{id}: the open lots hold the balance");
    for l in &v.state.lots {
        assert_eq!(lots.get(&l.id).map(|x| x.1), Some(l.remaining), "{id}: lot {} matches its postings", l.id);
        assert!(l.remaining >= 0 && l.remaining <= l.granted, "{id}: lot {l:?}");
    }
    // Every order earned, every earning has its order: nothing half applied.
    assert_eq!(orders.iter().cloned().collect::<BTreeSet<_>>(), earned_for, "{id}: orders and their lots");
    (orders, posted)
}

/// Replaying the command log into a memory store rebuilds every member.
fn check_replay(engine: &Engine<Arc<dyn Store>>) {
    let replica = Engine::new(program(), MemoryStore::new());
    engine.replay_into(&replica).unwrap();
    let a = members(engine.store().as_ref());
    let b = members(replica.store());
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.state, y.state, "replay rebuilds {}", x.state.id);
    }
}

fn receipt_keys(store: &dyn Store) -> Vec<String> {
    let mut keys = Vec::new();
    store
        .receipts(&mut |r| {
            keys.push(r.key);
            Ok(())
        })
        .unwrap();
    keys
}

// ----- crash safety -----------------------------------------------------------------

fn crash_import(place: &Place, kills: usize) {
    let mut rng = Rng::seeded();
    eprintln!("crash test on {}: seed {}", place.spec, rng.0);
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let mut last_ack: Option<u64> = None;
    let mut restarts_with_acks = 0;
    for round in 0..kills {
        // Start a few orders before the last acknowledged one: those repeat
        // (idempotently) and the one in flight at the kill is retried.
        let start = last_ack.map_or(0, |l| l.saturating_sub(rng.below(4)));
        let mut child = spawn_child(&format!("import:{start}"), &place.spec);
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| l.strip_prefix("ACK ").map(String::from))
                .collect::<Vec<_>>()
        });
        std::thread::sleep(Duration::from_millis(40 + rng.below(260)));
        child.kill().expect("SIGKILL");
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: the child must have been killed, not exited: {status:?}");
        let lines = reader.join().unwrap();
        if !lines.is_empty() {
            restarts_with_acks += 1;
        }
        for id in lines {
            let n: u64 = id.trim_start_matches("o-").parse().unwrap();
            last_ack = Some(last_ack.map_or(n, |l| l.max(n)));
            acked.insert(id);
        }
    }
    assert!(
        restarts_with_acks >= kills / 2,
        "the child acknowledged orders in only {restarts_with_acks} of {kills} runs"
    );

    let engine = Engine::new(program(), open(&place.spec));
    let store = engine.store().as_ref();
    settle(store);
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    for v in members(store) {
        let (orders, _) = check_member(&engine, &v);
        for o in orders {
            assert_eq!(store.order_owner(&o).unwrap().as_ref(), Some(&v.state.id), "owner of {o}");
            *recorded.entry(o).or_default() += 1;
        }
    }
    for (o, n) in &recorded {
        assert_eq!(*n, 1, "order {o} recorded {n} times");
    }
    for o in &acked {
        assert!(recorded.contains_key(o), "acknowledged order {o} is missing");
    }
    let keys = receipt_keys(store);
    let order_keys: BTreeSet<String> = keys.iter().cloned().collect();
    assert_eq!(order_keys.len(), keys.len(), "receipt keys are unique");
    let expected: BTreeSet<String> = recorded.keys().map(|o| order_key(o)).collect();
    assert_eq!(order_keys, expected, "one receipt per recorded order, no receipt without its order");
    check_replay(&engine);
    eprintln!(
        "crash test on {}: {kills} kills, {} orders acknowledged, {} recorded",
        place.spec,
        acked.len(),
        recorded.len()
    );
}

/// Waits until the store has stopped changing (the same member versions
/// and receipt keys in three reads 100 ms apart). The checks read members,
/// then each member's events, then the receipts, each in its own snapshot;
/// and PostgreSQL still commits a transaction whose `COMMIT` it received
/// before the client was killed, possibly while those reads run (a member's
/// version read before it, its events after). Whatever is stored must then
/// pass every check: this only waits for the last write to land.
fn settle(store: &dyn Store) {
    let state = || {
        let versions: Vec<(MemberId, u64)> = members(store).into_iter().map(|v| (v.state.id, v.version)).collect();
        (versions, receipt_keys(store))
    };
    let mut last = state();
    let mut same = 0;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let now = state();
        if now == last {
            same += 1;
            if same == 2 {
                return;
            }
        } else {
            (last, same) = (now, 0);
        }
    }
    panic!("the store was still changing 10 s after the last kill");
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_survives_sigkill_during_import() {
    crash_import(&sqlite_place("crash"), 20);
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_survives_client_sigkill_during_import() {
    let Some(place) = postgres_place("crash") else { return };
    // Create the schema before the first child, so killing that one while it
    // migrates is not the common case.
    drop(open(&place.spec));
    crash_import(&place, 20);
}

// ----- concurrency ------------------------------------------------------------------

fn churn(place: &Place) {
    // Every member starts with 100 points.
    {
        let engine = Engine::new(program(), open(&place.spec));
        for m in 0..3 {
            engine
                .record_order(Order::paid(format!("seed-{m}"), format!("m{m}"), now(), Decimal::new(10_000, 2)), now())
                .unwrap();
        }
    }
    let children: Vec<_> = (0..2).map(|c| spawn_child(&format!("churn:{c}:3000"), &place.spec)).collect();
    let mut earned: BTreeMap<String, i64> = BTreeMap::new();
    let mut redeemed: BTreeMap<String, i64> = BTreeMap::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();
    let (mut insufficient, mut conflicts) = (0, 0);
    for mut child in children {
        let out = BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok).collect::<Vec<_>>();
        let status = child.wait().unwrap();
        assert!(status.success(), "child failed: {status:?}");
        for line in out {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.as_slice() {
                ["EARN", key, member, points] => {
                    *earned.entry(member.to_string()).or_default() += points.parse::<i64>().unwrap();
                    assert!(acked.insert(key.to_string()), "{key} acknowledged twice");
                }
                ["REDEEM", key, member, points] => {
                    *redeemed.entry(member.to_string()).or_default() += points.parse::<i64>().unwrap();
                    assert!(acked.insert(key.to_string()), "{key} acknowledged twice");
                }
                ["INSUFFICIENT", _] => insufficient += 1,
                ["CONFLICT", _] => conflicts += 1,
                _ => {}
            }
        }
    }
    assert!(acked.len() > 50, "too little work done: {}", acked.len());
    assert!(!redeemed.is_empty() && insufficient > 0, "the test must exercise both outcomes");

    let engine = Engine::new(program(), open(&place.spec));
    let store = engine.store().as_ref();
    let keys: BTreeSet<String> = receipt_keys(store).into_iter().collect();
    for k in &acked {
        assert!(keys.contains(k), "acknowledged command {k} lost");
    }
    // Only acknowledged commands (and the seed orders) were written.
    assert_eq!(keys.len(), acked.len() + 3, "no unacknowledged command was written");
    for v in members(store) {
        let (_, posted) = check_member(&engine, &v);
        let m = v.state.id.0.as_str();
        let expected = 100 + earned.get(m).copied().unwrap_or(0) - redeemed.get(m).copied().unwrap_or(0);
        assert_eq!(posted, expected, "{m}: acknowledged earnings minus acknowledged redemptions");
    }
    check_replay(&engine);
    eprintln!(
        "concurrency on {}: {} commands acknowledged, {insufficient} refused for insufficient points, {conflicts} conflicts",
        place.spec,
        acked.len()
    );
}

#[cfg(feature = "sqlite")]
#[test]
fn sqlite_two_processes_four_threads_never_overspend() {
    churn(&sqlite_place("churn"));
}

#[cfg(feature = "postgres")]
#[test]
fn postgres_two_processes_four_threads_never_overspend() {
    let Some(place) = postgres_place("churn") else { return };
    churn(&place);
}
