//! Property tests of the ledger invariants, TigerBeetle style: random
//! histories of commands (members, orders with random amounts including zero,
//! payments, cancellations, partial and full refunds, redemptions, reversals,
//! adjustments, `run_due` at random times, merges, profile updates and
//! erasures) run against a programme with a pending period and a random
//! expiry policy, and the invariants are checked after every operation.
//!
//! Each property runs 1,000 cases by default; set `PROPTEST_CASES` to change
//! that. Failures are persisted under `crm-core/proptest-regressions/`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use rust_decimal::Decimal;
use serde_json::json;

use crm_core::ledger::{Lot, LotPhase, LotSource};
use crm_core::member::MemberStatus;
use crm_core::store::Versioned;
use crm_core::{
    Command, CrmError, Engine, Identity, MemberId, MemoryStore, Order, OrderItem, OrderStatus, Outcome, ProfilePatch,
    Program, Refund, RefundScope, ReturnedItem, Store,
};

const MEMBERS: u8 = 3;
const POINT_TYPES: [&str; 2] = ["reward", "growth"];

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct("proptest-regressions/props.txt"))),
        ..ProptestConfig::default()
    }
}

// ----- the programme ----------------------------------------------------------------

#[derive(Debug, Clone)]
struct Setup {
    timezone: &'static str,
    pending_days: u32,
    expiry: serde_json::Value,
    rounding: &'static str,
    cap_at_zero: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    let expiry = prop_oneof![
        (1u32..12).prop_map(|days| json!({"type": "days_after_earning", "days": days})),
        (0u32..2).prop_map(|months| json!({"type": "end_of_nth_month", "months": months})),
        (1u32..12).prop_map(|days| json!({"type": "inactivity", "days": days})),
        Just(json!({"type": "end_of_following_year"})),
        Just(json!({"type": "none"})),
    ];
    (
        prop::sample::select(vec!["Asia/Shanghai", "Europe/Berlin", "America/New_York"]),
        0u32..4,
        expiry,
        prop::sample::select(vec!["floor", "half_up", "half_even", "ceil"]),
        any::<bool>(),
    )
        .prop_map(|(timezone, pending_days, expiry, rounding, cap_at_zero)| Setup {
            timezone,
            pending_days,
            expiry,
            rounding,
            cap_at_zero,
        })
}

fn program(s: &Setup) -> Program {
    Program::from_value(json!({
        "version": 1, "name": "Props", "timezone": s.timezone, "currency": "CNY", "value_per_point": "0.01",
        "point_types": [
            {"id": "reward", "pending_days": s.pending_days, "expiry": s.expiry},
            {"id": "growth", "spendable": false}
        ],
        "earn": {
            "rules": [
                {"id": "base", "point_type": "reward", "points_per_unit": "1", "rounding": s.rounding},
                {"id": "grow", "point_type": "growth", "points_per_unit": "0.5", "rounding": "half_up",
                 "multipliers": [{"when": {"type": "birthday_month"}, "factor": "2"}]}
            ],
            "bonuses": [
                {"id": "welcome", "action": "sign_up", "point_type": "reward", "points": 10},
                {"id": "first", "action": "first_order", "point_type": "reward", "points": 5},
                {"id": "profile", "action": "profile_completed", "point_type": "growth", "points": 30}
            ]
        },
        "refunds": {"clawback": if s.cap_at_zero { "cap_at_zero" } else { "allow_negative" }}
    }))
    .expect("valid programme")
}

// ----- operations ---------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RefundPart {
    Full,
    /// Per mille of what is left to refund (above 1000: more than is left).
    PerMille(u16),
    /// Return `qty` of one order line (by index; may exceed what was bought).
    Items {
        line: u8,
        qty: u32,
    },
}

#[derive(Debug, Clone)]
enum RedeemPoints {
    /// Percent of what is available now (above 100: more than available).
    Percent(u8),
    /// An absolute number, zero and negative included.
    Points(i64),
}

#[derive(Debug, Clone)]
enum Op {
    Create { member: u8 },
    Order { member: u8, amount: Decimal, placed: bool, back_minutes: u32, items: Vec<(u32, i64)> },
    Pay { order: u8 },
    Cancel { order: u8 },
    Refund { order: u8, part: RefundPart },
    Redeem { member: u8, points: RedeemPoints },
    Reverse { redemption: u8 },
    Adjust { member: u8, delta: i64 },
    RunDue,
    Merge { survivor: u8, merged: u8 },
    Profile { member: u8, birth_month: u32 },
    Erase { member: u8 },
    Advance { minutes: u32 },
}

/// Order amounts: zero, whole units, halves, cents, four decimals, and a few
/// negative ones (which must be refused).
fn amount() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        2 => Just(Decimal::ZERO),
        3 => (0i64..300).prop_map(Decimal::from),
        3 => (0i64..300).prop_map(|u| Decimal::new(u * 10 + 5, 1)),
        6 => (0i64..50_000).prop_map(|c| Decimal::new(c, 2)),
        1 => (0i64..1_000_000).prop_map(|c| Decimal::new(c, 4)),
        1 => (1i64..10_000).prop_map(|c| Decimal::new(-c, 2)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let member = 0..MEMBERS;
    prop_oneof![
        4 => member.clone().prop_map(|member| Op::Create { member }),
        20 => (member.clone(), amount(), prop::bool::weighted(0.3), 0u32..3 * 24 * 60)
            .prop_flat_map(|(member, amount, placed, back_minutes)| {
                // Lines as (qty, unit price in cents); the paid amount need not match them.
                prop::collection::vec((1u32..4, 1i64..20_000), 0..3).prop_map(move |items| Op::Order {
                    member,
                    amount,
                    placed,
                    back_minutes,
                    items,
                })
            }),
        4 => any::<u8>().prop_map(|order| Op::Pay { order }),
        2 => any::<u8>().prop_map(|order| Op::Cancel { order }),
        8 => (any::<u8>(), prop_oneof![
                Just(RefundPart::Full),
                (0u16..1100).prop_map(RefundPart::PerMille),
                (any::<u8>(), 0u32..4).prop_map(|(line, qty)| RefundPart::Items { line, qty }),
            ])
            .prop_map(|(order, part)| Op::Refund { order, part }),
        12 => (member.clone(), prop_oneof![
                2 => Just(RedeemPoints::Percent(100)),
                4 => (1u8..130).prop_map(RedeemPoints::Percent),
                1 => (-5i64..2_000).prop_map(RedeemPoints::Points),
            ])
            .prop_map(|(member, points)| Op::Redeem { member, points }),
        6 => any::<u8>().prop_map(|redemption| Op::Reverse { redemption }),
        4 => (member.clone(), -300i64..300).prop_map(|(member, delta)| Op::Adjust { member, delta }),
        6 => Just(Op::RunDue),
        3 => (member.clone(), member.clone()).prop_map(|(survivor, merged)| Op::Merge { survivor, merged }),
        2 => (member.clone(), 1u32..=12).prop_map(|(member, birth_month)| Op::Profile { member, birth_month }),
        1 => member.clone().prop_map(|member| Op::Erase { member }),
        10 => prop_oneof![0u32..120, 0u32..3 * 24 * 60, 0u32..20 * 24 * 60].prop_map(|minutes| Op::Advance { minutes }),
    ]
}

fn history(len: usize) -> impl Strategy<Value = (Setup, Vec<Op>)> {
    (setup(), prop::collection::vec(op(), 1..len))
}

// ----- the harness ------------------------------------------------------------------------

/// Which invariants to check after every operation.
#[derive(Clone, Copy, Default)]
struct Checks {
    balances: bool,
    redemptions: bool,
    idempotency: bool,
    replay: bool,
    clawbacks: bool,
    expiry_clawback: bool,
}

type Snapshot = (Vec<Versioned>, usize);

struct Harness<S: Store> {
    program: Program,
    engine: Engine<S>,
    now: DateTime<Utc>,
    checks: Checks,
    orders: Vec<String>,
    /// `(member, redemption id)` of successful redemptions.
    redemptions: Vec<(MemberId, String)>,
    /// Points clawed back per (order, point type), from the refund outcomes.
    clawed: BTreeMap<(String, String), i64>,
    seq: u64,
    /// Members created with their `web` identity.
    linked: BTreeSet<MemberId>,
    /// An erasure happened (it rewrites the command log).
    erased: bool,
    /// Orders that were paid at some point.
    paid: BTreeSet<String>,
    /// Keys of commands that succeeded (a repeated key returns the first outcome).
    done: BTreeSet<String>,
    /// The command log replayed so far into `mirror`.
    mirror: Engine<MemoryStore>,
    replayed: usize,
    /// What every executed command returned, in order.
    outcomes: Vec<Result<Outcome, CrmError>>,
}

fn mid(i: u8) -> MemberId {
    MemberId(format!("m{i}"))
}

fn web(i: u8) -> Identity {
    Identity { channel: "web".into(), external_id: format!("m{i}") }
}

/// Member snapshots compared by replay: the states always, and the versions
/// too unless an erasure rewrote the log (a redacted command may emit fewer
/// events, e.g. no identity links).
fn same_members(a: &[Versioned], b: &[Versioned], versions: bool) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.state == y.state && (!versions || x.version == y.version))
}

fn start() -> DateTime<Utc> {
    // 23:30 on 27 February 2024 in Shanghai: histories cross local midnight,
    // 29 February, month ends and the spring DST changes in New York
    // (10 March) and Berlin (31 March).
    Utc.with_ymd_and_hms(2024, 2, 27, 15, 30, 0).unwrap()
}

/// Every stored member, sorted by id (shared by the other test modules).
pub(crate) fn members_of<S: Store + ?Sized>(store: &S) -> Vec<Versioned> {
    let mut all = Vec::new();
    store
        .scan(&mut |v| {
            all.push(v);
            Ok(())
        })
        .unwrap();
    all.sort_by(|a, b| a.state.id.cmp(&b.state.id));
    all
}

fn receipt_count<S: Store>(store: &S) -> usize {
    let mut n = 0;
    store
        .receipts(&mut |_| {
            n += 1;
            Ok(())
        })
        .unwrap();
    n
}

fn snapshot<S: Store>(store: &S) -> Snapshot {
    (members_of(store), receipt_count(store))
}

fn same_error(a: &CrmError, b: &CrmError) -> bool {
    a.code() == b.code() && a.field() == b.field()
}

impl<S: Store> Harness<S> {
    fn new(setup: &Setup, store: S, checks: Checks) -> Self {
        let program = program(setup);
        Harness {
            engine: Engine::new(program.clone(), store),
            mirror: Engine::new(program.clone(), MemoryStore::new()),
            program,
            now: start(),
            checks,
            orders: Vec::new(),
            redemptions: Vec::new(),
            clawed: BTreeMap::new(),
            seq: 0,
            done: BTreeSet::new(),
            paid: BTreeSet::new(),
            erased: false,
            linked: BTreeSet::new(),
            replayed: 0,
            outcomes: Vec::new(),
        }
    }

    fn key(&mut self, kind: &str) -> String {
        self.seq += 1;
        format!("{kind}-{}", self.seq)
    }

    fn pick<T: Clone>(list: &[T], i: u8) -> Option<T> {
        (!list.is_empty()).then(|| list[usize::from(i) % list.len()].clone())
    }

    /// The member `id` resolves to, when it exists and takes commands.
    fn active(&self, id: &MemberId) -> Option<MemberId> {
        let st = self.engine.resolve(id).ok()?;
        st.is_active().then_some(st.id)
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        let now = self.now;
        let (key, command) = match op {
            Op::Advance { minutes } => {
                self.now += Duration::minutes(i64::from(*minutes));
                return Ok(());
            }
            Op::Create { member } => {
                let command = Command::CreateMember {
                    member_id: mid(*member),
                    profile: Default::default(),
                    identities: vec![web(*member)],
                    tags: vec![],
                    consents: BTreeMap::new(),
                };
                (command.default_key(now).unwrap(), command)
            }
            Op::Order { member, amount, placed, back_minutes, items } => {
                let id = self.key("o");
                let mut order =
                    Order::paid(id, mid(*member), now - Duration::minutes(i64::from(*back_minutes)), *amount);
                if *placed {
                    order.status = OrderStatus::Placed;
                }
                order.items = items
                    .iter()
                    .enumerate()
                    .map(|(i, &(qty, cents))| OrderItem {
                        sku: format!("s{i}"),
                        category: None,
                        qty,
                        price: Decimal::new(cents, 2),
                    })
                    .collect();
                let command = Command::RecordOrder { order };
                (command.default_key(now).unwrap(), command)
            }
            Op::Pay { order } | Op::Cancel { order } => {
                let Some(order_id) = Self::pick(&self.orders, *order) else { return Ok(()) };
                let status = if matches!(op, Op::Pay { .. }) { OrderStatus::Paid } else { OrderStatus::Cancelled };
                let command = Command::SetOrderStatus { order_id, status, at: None };
                (command.default_key(now).unwrap(), command)
            }
            Op::Refund { order, part } => {
                let Some(order_id) = Self::pick(&self.orders, *order) else { return Ok(()) };
                let scope = match part {
                    RefundPart::Full => RefundScope::Full,
                    RefundPart::PerMille(pm) => {
                        let left = self.left_to_refund(&order_id).unwrap_or(Decimal::ONE);
                        let amount = (left * Decimal::from(*pm) / Decimal::from(1000)).round_dp(2);
                        RefundScope::Amount { amount }
                    }
                    RefundPart::Items { line, qty } => {
                        let lines = self.order_lines(&order_id).max(1);
                        let sku = format!("s{}", usize::from(*line) % lines);
                        RefundScope::Items { items: vec![ReturnedItem { sku, qty: *qty }] }
                    }
                };
                let refund = Refund { id: self.key("rf"), order_id, at: now, scope };
                let command = Command::RecordRefund { refund };
                (command.default_key(now).unwrap(), command)
            }
            Op::Redeem { member, points } => {
                let available = self.engine.balance(&mid(*member), "reward", now).map(|b| b.available).unwrap_or(0);
                let points = match points {
                    RedeemPoints::Percent(p) => (available.max(0) * i64::from(*p) / 100).max(1),
                    RedeemPoints::Points(p) => *p,
                };
                let command =
                    Command::Redeem { member_id: mid(*member), point_type: "reward".into(), points, reason: None };
                (self.key("redeem"), command)
            }
            Op::Reverse { redemption } => {
                let Some((member_id, redemption_id)) = Self::pick(&self.redemptions, *redemption) else {
                    return Ok(());
                };
                (self.key("reverse"), Command::ReverseRedemption { member_id, redemption_id })
            }
            Op::Adjust { member, delta } => {
                let command = Command::Adjust {
                    member_id: mid(*member),
                    point_type: if delta % 3 == 0 { "growth" } else { "reward" }.into(),
                    delta: *delta,
                    reason: "goodwill".into(),
                    actor: "props".into(),
                };
                (self.key("adjust"), command)
            }
            Op::RunDue => (Command::run_due().default_key(now).unwrap(), Command::run_due()),
            Op::Merge { survivor, merged } => {
                let command = Command::Merge { survivor: mid(*survivor), merged: mid(*merged) };
                (command.default_key(now).unwrap(), command)
            }
            Op::Profile { member, birth_month } => {
                let patch = ProfilePatch {
                    name: Some(format!("Name {member}")),
                    phone: Some(format!("+86 139 0000 000{member}")),
                    email: Some(format!("m{member}@example.com")),
                    birthday: NaiveDate::from_ymd_opt(1990, *birth_month, 28),
                    gender: Some(crm_core::Gender::Female),
                    region: Some("Region".into()),
                    ..ProfilePatch::default()
                };
                (self.key("profile"), Command::UpdateProfile { member_id: mid(*member), patch })
            }
            Op::Erase { member } => {
                let command = Command::Erase { member_id: mid(*member) };
                (command.default_key(now).unwrap(), command)
            }
        };
        self.execute(op, &key, command)
    }

    fn order_lines(&self, order_id: &str) -> usize {
        let owner = self.engine.store().order_owner(order_id).ok().flatten();
        let st = owner.and_then(|o| self.engine.resolve(&o).ok());
        st.and_then(|st| st.orders.get(order_id).map(|o| o.order.items.len())).unwrap_or(0)
    }

    fn left_to_refund(&self, order_id: &str) -> Option<Decimal> {
        let owner = self.engine.store().order_owner(order_id).ok()??;
        let st = self.engine.resolve(&owner).ok()?;
        let o = st.orders.get(order_id)?;
        Some(o.order.amount - o.refunded)
    }

    fn execute(&mut self, op: &Op, key: &str, command: Command) -> Result<(), TestCaseError> {
        let now = self.now;
        let before = (self.checks.idempotency || self.checks.redemptions).then(|| snapshot(self.engine.store()));
        let available_before = match &command {
            Command::Redeem { member_id, .. } => {
                self.active(member_id).map(|id| self.engine.balance(&id, "reward", now).unwrap().available)
            }
            _ => None,
        };
        // Two distinct active members can always be merged.
        let mergeable = match &command {
            Command::Merge { survivor, merged } => {
                survivor != merged
                    && self.engine.member(survivor).is_ok_and(|m| m.is_active())
                    && self.engine.member(merged).is_ok_and(|m| m.is_active())
            }
            _ => false,
        };
        let refund_of = match &command {
            Command::RecordRefund { refund } => Some(refund.order_id.clone()),
            Command::SetOrderStatus { order_id, status: OrderStatus::Cancelled, .. } => Some(order_id.clone()),
            _ => None,
        };
        let pre_refund = refund_of.filter(|_| self.checks.expiry_clawback).and_then(|o| self.order_state(&o));
        let result = self.engine.execute(key, command.clone(), now);
        self.outcomes.push(result.clone());
        if mergeable {
            prop_assert!(result.is_ok(), "{op:?} refused: {result:?}");
        }

        // What the command was expected to do.
        match (&command, &result) {
            (Command::RecordOrder { order }, Ok(_)) => {
                self.orders.push(order.id.clone());
                if order.status.earns() {
                    self.paid.insert(order.id.clone());
                }
            }
            (Command::SetOrderStatus { order_id, status: OrderStatus::Paid, .. }, Ok(_)) => {
                self.paid.insert(order_id.clone());
            }
            (Command::RecordOrder { order }, Err(e)) if order.amount < Decimal::ZERO => {
                prop_assert_eq!((e.code(), e.field()), ("validation_error", Some("order.amount")));
            }
            (Command::Redeem { points, .. }, Ok(Outcome::Redemption { points: p, allocations, .. })) => {
                prop_assert_eq!(p, points);
                prop_assert_eq!(allocations.iter().map(|a| a.points).sum::<i64>(), *points);
            }
            _ => {}
        }
        if let (Command::Redeem { member_id, .. }, Ok(Outcome::Redemption { redemption_id, .. })) = (&command, &result)
        {
            self.redemptions.push((member_id.clone(), redemption_id.clone()));
        }
        let fresh = result.is_ok() && self.done.insert(key.to_string());
        if let (true, Ok(Outcome::Refund { order_id, clawbacks, .. })) = (fresh, &result) {
            for c in clawbacks {
                prop_assert!(c.taken >= 0 && c.debt >= 0 && c.shortfall >= 0, "{c:?}");
                *self.clawed.entry((order_id.clone(), c.point_type.clone())).or_insert(0) +=
                    c.taken + c.debt + c.shortfall;
            }
        }

        if self.checks.redemptions {
            if let Command::Redeem { member_id, points, .. } = &command {
                match (available_before, &result) {
                    _ if *points <= 0 => {
                        let e = result.as_ref().unwrap_err();
                        prop_assert_eq!((e.code(), e.field()), ("validation_error", Some("points")));
                    }
                    (Some(available), Ok(_)) => {
                        prop_assert!(*points <= available, "redeemed {points} of {available}");
                        let id = self.active(member_id).unwrap();
                        let after = self.engine.balance(&id, "reward", now).unwrap().available;
                        prop_assert_eq!(after, available - points);
                    }
                    (Some(available), Err(CrmError::InsufficientPoints { requested, available: a })) => {
                        prop_assert!(*points > available, "refused {points} with {available} available");
                        prop_assert_eq!((*requested, *a), (*points, available.max(0)));
                    }
                    (Some(available), Err(e)) => {
                        return Err(TestCaseError::fail(format!("redeem {points} of {available}: {e:?}")));
                    }
                    (None, r) => prop_assert!(r.is_err(), "redeemed from a member that takes no commands"),
                }
            }
        }

        if let Some(before) = before {
            if result.is_err() {
                prop_assert!(snapshot(self.engine.store()) == before, "a failed {op:?} changed state");
            }
        }

        if self.checks.idempotency {
            let first = snapshot(self.engine.store());
            let again = self.engine.execute(key, command.clone(), now);
            match (&result, &again) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{:?} under key {} gave another outcome", op, key),
                (Err(a), Err(b)) => prop_assert!(same_error(a, b), "{a:?} then {b:?}"),
                (a, b) => return Err(TestCaseError::fail(format!("{op:?}: {a:?} then {b:?}"))),
            }
            // A retry later (any `now`) still returns the first outcome.
            if let Ok(first_outcome) = &result {
                let later = self.engine.execute(key, command.clone(), now + Duration::days(400)).unwrap();
                prop_assert_eq!(first_outcome, &later);
            }
            prop_assert!(snapshot(self.engine.store()) == first, "repeating {op:?} changed state");
        }

        if let (Command::Erase { .. }, Ok(_)) = (&command, &result) {
            self.erased = true;
        }
        if let (Command::CreateMember { member_id, .. }, true) = (&command, fresh) {
            self.linked.insert(member_id.clone());
        }

        if self.checks.replay {
            if matches!((&command, &result), (Command::Erase { .. }, Ok(_))) {
                // Erasure rewrites the log: replay it from the start.
                self.mirror = Engine::new(self.program.clone(), MemoryStore::new());
                self.replayed = 0;
            }
            let mut log = Vec::new();
            let mut i = 0;
            self.engine
                .store()
                .receipts(&mut |r| {
                    if i >= self.replayed {
                        log.push(r);
                    }
                    i += 1;
                    Ok(())
                })
                .unwrap();
            for r in log {
                self.replayed += 1;
                if let Err(e) = self.mirror.execute(&r.key, r.command.clone(), r.now) {
                    return Err(TestCaseError::fail(format!("replaying {r:?} failed: {e:?}")));
                }
            }
            let replayed = members_of(self.mirror.store());
            let erased = self.erased;
            prop_assert!(
                same_members(&replayed, &members_of(self.engine.store()), !erased),
                "replay after {op:?} gives other members"
            );
        }

        if self.checks.balances {
            self.check_balances()?;
        }
        if self.checks.clawbacks {
            self.check_clawbacks()?;
        }
        if let (Some(pre), true, Ok(Outcome::Refund { order_id, clawbacks, .. })) = (pre_refund, fresh, &result) {
            self.check_refund_spares_expired(order_id, &pre, clawbacks)?;
        }
        Ok(())
    }

    /// The member owning an order now, its ledger of the order, its lots
    /// and its balance totals.
    fn order_state(&self, order_id: &str) -> Option<OrderState> {
        let owner = self.engine.store().order_owner(order_id).ok()??;
        let st = self.engine.resolve(&owner).ok()?;
        let ledger = crm_core::state::OrderLedger::clone(st.orders.get(order_id)?);
        let totals = POINT_TYPES
            .iter()
            .map(|pt| (pt.to_string(), self.engine.balance(&st.id, pt, self.now).unwrap().total()))
            .collect();
        Some(OrderState { member: st.id.clone(), ledger, lots: st.open_lots().cloned().collect(), totals })
    }

    /// A refund (or cancellation) takes back the refunded share of what the
    /// order earned (plus its bonuses when the whole order goes back), less
    /// what was already clawed and less the order's own points that expired
    /// unspent; so the balance never ends lower than if the expired points
    /// had been clawed back when they expired.
    fn check_refund_spares_expired(
        &self,
        order_id: &str,
        pre: &OrderState,
        clawbacks: &[crm_core::command::Clawback],
    ) -> Result<(), TestCaseError> {
        let after = self.order_state(order_id).expect("the refunded order exists");
        prop_assert_eq!(&after.member, &pre.member);
        let o = &after.ledger;
        let full = o.refunded >= o.order.amount || o.order.amount.is_zero();
        for pt in POINT_TYPES {
            let target = clawback_target(o, pt);
            let clawed_before = pre.ledger.clawed.get(pt).copied().unwrap_or(0);
            let expired_before = expired_of(&pre.ledger, &pre.lots, order_id, pt, full, self.now);
            let allowed = (target - clawed_before - expired_before).max(0);
            let c = clawbacks.iter().find(|c| c.point_type == pt);
            let took = c.map_or(0, |c| c.taken + c.debt + c.shortfall);
            prop_assert_eq!(took, allowed, "order {} {}: target {}, expired {}", order_id, pt, target, expired_before);
            let before = pre.totals[pt];
            let now_total = after.totals[pt];
            prop_assert!(
                now_total >= before - allowed,
                "order {order_id} {pt}: balance {before} -> {now_total}, more than the {allowed} still owed"
            );
            prop_assert_eq!(now_total, before - c.map_or(0, |c| c.taken + c.debt));
        }
        Ok(())
    }

    /// Balance = sum of the open lots less debt; every lot within its grant;
    /// the statement's running balance agrees with the lots.
    fn check_balances(&self) -> Result<(), TestCaseError> {
        let now = self.now;
        let mut outstanding = BTreeMap::new();
        for v in members_of(self.engine.store()) {
            let st = &v.state;
            for lot in &st.lots {
                prop_assert!(0 <= lot.remaining && lot.remaining <= lot.granted, "{lot:?}");
            }
            let mut ids: Vec<_> = st.lots.iter().map(|l| &l.id).collect();
            ids.sort();
            ids.dedup();
            prop_assert_eq!(ids.len(), st.lots.len(), "duplicate lot ids in {}", st.id);
            // What the state keeps derived (the lots' next activation or
            // expiry, whether an order is unpaid) agrees with the state it
            // is derived from, which a copy read back from JSON works out.
            let back: crm_core::state::MemberState = serde_json::from_value(serde_json::to_value(st).unwrap()).unwrap();
            prop_assert_eq!(st.lots_due_at(), back.lots_due_at(), "lots due of {}", st.id);
            prop_assert_eq!(st.next_due_at(), back.next_due_at(), "next due of {}", st.id);
            let unpaid = st.orders.values().any(|o| o.order.status == OrderStatus::Placed);
            prop_assert!(unpaid <= st.may_have_unpaid_orders(), "unpaid orders of {}", st.id);
            for identity in &st.identities {
                prop_assert_eq!(self.engine.find_by_identity(identity).unwrap(), Some(st.id.clone()));
            }
            if let MemberStatus::Merged { .. } = st.status {
                prop_assert!(st.identities.is_empty(), "merged {} kept identities", st.id);
                prop_assert!(st.lots.is_empty() && st.debts.is_empty(), "merged {} kept points", st.id);
                continue;
            }
            for pt in POINT_TYPES {
                let debt = st.debt(pt);
                prop_assert!(debt >= 0);
                let b = self.engine.balance(&st.id, pt, now).unwrap();
                let mine = st.lots.iter().filter(|l| l.point_type == pt);
                let open: i64 = mine.clone().filter(|l| l.phase(now) != LotPhase::Expired).map(|l| l.remaining).sum();
                let all: i64 = mine.map(|l| l.remaining).sum();
                prop_assert_eq!(b.debt, debt);
                prop_assert_eq!(b.available + b.pending, open - debt, "balance of {} {}", st.id, pt);
                let statement = self.engine.statement(&st.id, pt, 0, 10_000).unwrap();
                let last = statement.entries.last().map_or(0, |e| e.balance);
                prop_assert_eq!(last, all - debt, "statement of {} {}", st.id, pt);
                *outstanding.entry(pt).or_insert(0) += b.total();
            }
        }
        // Every member's identity belongs to whoever the member now is.
        for i in 0..MEMBERS {
            let owner = self.engine.find_by_identity(&web(i)).unwrap();
            match self.engine.resolve(&mid(i)) {
                Ok(st) if st.is_active() && self.linked.contains(&mid(i)) => {
                    prop_assert_eq!(owner, Some(st.id), "identity of m{}", i)
                }
                _ => prop_assert_eq!(owner, None, "identity of m{}", i),
            }
        }
        let liability = self.engine.liability(now).unwrap();
        for l in &liability.point_types {
            prop_assert_eq!(l.outstanding, outstanding.get(l.point_type.as_str()).copied().unwrap_or(0));
        }
        Ok(())
    }

    /// Refunds claw back at most the refunded share of what the order earned
    /// (plus its bonuses once the whole order is back), never more; exactly
    /// that less what expired unspent (`check_refund_spares_expired`).
    fn check_clawbacks(&self) -> Result<(), TestCaseError> {
        for v in members_of(self.engine.store()) {
            for (order_id, o) in &v.state.orders {
                prop_assert!(
                    o.refunded <= o.order.amount,
                    "order {order_id} refunded {} of {}",
                    o.refunded,
                    o.order.amount
                );
                prop_assert!(
                    o.refunded.is_zero() || self.paid.contains(order_id),
                    "never-paid {order_id} was refunded"
                );
                let refunded = o.refunded > Decimal::ZERO || o.order.status == OrderStatus::Cancelled;
                for pt in POINT_TYPES {
                    let earned = o.earned.get(pt).copied().unwrap_or(0);
                    let bonus = o.bonus.get(pt).copied().unwrap_or(0);
                    let clawed = o.clawed.get(pt).copied().unwrap_or(0);
                    let from_outcomes = self.clawed.get(&(order_id.clone(), pt.to_string())).copied().unwrap_or(0);
                    prop_assert!(
                        0 <= clawed && clawed <= earned + bonus,
                        "order {order_id} {pt}: {clawed} of {earned} + bonus {bonus}"
                    );
                    prop_assert_eq!(from_outcomes, clawed, "order {} {}", order_id, pt);
                    // Never more than the refunded share (plus the bonuses
                    // once the whole order is back) …
                    let target = if refunded { clawback_target(o, pt) } else { 0 };
                    prop_assert!(clawed <= target, "order {order_id} {pt}: clawed {clawed} of target {target}");
                    // (That what was not clawed had expired unspent is checked
                    // at each refund: a back-dated order can later revive lots
                    // that had expired under the inactivity policy.)
                }
            }
        }
        Ok(())
    }
}

/// What `Harness::order_state` captures.
struct OrderState {
    member: MemberId,
    ledger: crm_core::state::OrderLedger,
    lots: Vec<Lot>,
    totals: BTreeMap<String, i64>,
}

/// What a refund of the order must have taken back in all, by the rule: the
/// refunded share of the earned points, plus the order's bonuses once the
/// whole order is refunded or cancelled.
fn clawback_target(o: &crm_core::state::OrderLedger, pt: &str) -> i64 {
    let earned = o.earned.get(pt).copied().unwrap_or(0);
    if o.refunded >= o.order.amount || o.order.amount.is_zero() {
        earned + o.bonus.get(pt).copied().unwrap_or(0)
    } else {
        let share = Decimal::from(earned) * o.refunded / o.order.amount;
        i64::try_from(share.floor()).unwrap()
    }
}

/// Points of the order that expired unspent by `t`: expired by `run_due`, or
/// still in a lot past its expiry (bonus lots only when `full`).
fn expired_of(
    o: &crm_core::state::OrderLedger,
    lots: &[Lot],
    order_id: &str,
    pt: &str,
    full: bool,
    t: DateTime<Utc>,
) -> i64 {
    let get = |m: &crm_core::vec_map::VecMap<String, i64>| m.get(pt).copied().unwrap_or(0);
    let overdue: i64 = lots
        .iter()
        .filter(|l| l.point_type == pt && l.phase(t) == LotPhase::Expired)
        .filter(|l| match &l.source {
            LotSource::Order { order_id: o, .. } => o == order_id,
            LotSource::Bonus { order_id: Some(o), .. } => full && o == order_id,
            _ => false,
        })
        .map(|l| l.remaining)
        .sum();
    get(&o.expired) + if full { get(&o.bonus_expired) } else { 0 } + overdue
}

fn run_history<S: Store>(setup: &Setup, ops: &[Op], store: S, checks: Checks) -> Result<Harness<S>, TestCaseError> {
    let mut h = Harness::new(setup, store, checks);
    for op in ops {
        h.run(op)?;
    }
    Ok(h)
}

const LEN: usize = 64;

proptest! {
    #![proptest_config(config())]

    /// Balance (available + pending − debt) equals the sum of the open lots;
    /// no lot below zero or above its grant; statements and liability agree.
    #[test]
    fn balance_is_the_sum_of_open_lots((setup, ops) in history(LEN)) {
        let checks = Checks { balances: true, ..Checks::default() };
        run_history(&setup, &ops, MemoryStore::new(), checks)?;
    }

    /// A redemption succeeds exactly when it is within the available points,
    /// takes exactly that much, and is refused with `insufficient_points`
    /// otherwise; failed commands change nothing.
    #[test]
    fn redemption_never_exceeds_available((setup, ops) in history(LEN)) {
        let checks = Checks { redemptions: true, ..Checks::default() };
        run_history(&setup, &ops, MemoryStore::new(), checks)?;
    }

    /// Re-executing any command under its key returns an equal outcome (or
    /// the same error) and changes no state.
    #[test]
    fn every_command_is_idempotent((setup, ops) in history(LEN)) {
        let checks = Checks { idempotency: true, ..Checks::default() };
        run_history(&setup, &ops, MemoryStore::new(), checks)?;
    }

    /// Refunds (and cancellations) never claw back more than the order
    /// earned, per point type; a full refund claws back all of it.
    #[test]
    fn refunds_never_claw_back_more_than_earned((setup, ops) in history(LEN)) {
        let checks = Checks { clawbacks: true, ..Checks::default() };
        run_history(&setup, &ops, MemoryStore::new(), checks)?;
    }

    /// A refund never takes back the order's points that already expired
    /// unspent: the balance after it is never lower than if the expired
    /// points had been clawed back at expiry.
    #[test]
    fn refunds_never_take_back_expired_points((setup, ops) in history(LEN)) {
        let checks = Checks { expiry_clawback: true, ..Checks::default() };
        run_history(&setup, &ops, MemoryStore::new(), checks)?;
    }

    /// Replaying the command log into a fresh in-memory store after every
    /// operation, and with `Engine::replay_into` at the end, gives the same
    /// members (snapshots and versions).
    #[test]
    fn replay_into_memory_gives_the_same_members((setup, ops) in history(LEN)) {
        let checks = Checks { replay: true, ..Checks::default() };
        let h = run_history(&setup, &ops, MemoryStore::new(), checks)?;
        let fresh = Engine::new(h.program.clone(), MemoryStore::new());
        h.engine.replay_into(&fresh).unwrap();
        prop_assert!(same_members(&members_of(fresh.store()), &members_of(h.engine.store()), !h.erased));
    }

    /// A history on the in-memory store, replayed with `Engine::replay_into`
    /// into a fresh in-memory SQLite store, gives the same members (shorter
    /// histories: SQLite commits dominate the run time in debug builds).
    #[cfg(feature = "sqlite")]
    #[test]
    fn replay_into_sqlite_gives_the_same_members((setup, ops) in history(LEN / 2)) {
        let memory = run_history(&setup, &ops, MemoryStore::new(), Checks::default())?;
        let fresh = Engine::new(memory.program.clone(), crm_core::SqliteStore::open_in_memory().unwrap());
        memory.engine.replay_into(&fresh).unwrap();
        prop_assert!(same_members(&members_of(fresh.store()), &members_of(memory.engine.store()), !memory.erased));
    }
}

proptest! {
    // Five SQLite runs per case, one of them on a file: a quarter of the cases.
    #![proptest_config(ProptestConfig { cases: (config().cases / 4).max(1), ..config() })]

    /// The SQLite store's snapshot cache and its sparse snapshots change
    /// nothing: the same history gives the same outcomes and members
    /// (snapshots and versions) as the in-memory store on SQLite with no
    /// cache (every read decodes the last stored snapshot and folds the
    /// events after it), with one or two members cached (nearly every read
    /// evicts) and with a large cache, each with snapshots on every commit,
    /// every 3 events and every 16, and on two caching handles of one file
    /// used in turn (every read and commit goes through the handle that did
    /// not write last, so its cache is stale).
    /// Idempotency checks on: they re-execute every command and scan.
    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_member_cache_changes_nothing((setup, ops) in history(LEN / 2)) {
        use crm_core::store::sqlite::{SqliteOptions, Synchronous};
        let checks = Checks { idempotency: true, ..Checks::default() };
        let reference = run_history(&setup, &ops, MemoryStore::new(), checks)?;
        let expected = members_of(reference.engine.store());
        for (cache, every) in [(0, 1), (0, 3), (0, 16), (1, 3), (2, 16), (10_000, 16)] {
            let options = SqliteOptions::new().member_cache(cache).snapshot_every(every);
            let h = run_history(&setup, &ops, crm_core::SqliteStore::open_in_memory_with(options).unwrap(), checks)?;
            prop_assert_eq!(&h.outcomes, &reference.outcomes, "member_cache({}) snapshot_every({})", cache, every);
            prop_assert!(
                same_members(&members_of(h.engine.store()), &expected, true),
                "member_cache({}) snapshot_every({})", cache, every
            );
        }
        let dir = std::env::temp_dir().join(format!("crm-props-cache-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let open = |cache| {
            let options = SqliteOptions::new().synchronous(Synchronous::Normal).member_cache(cache).snapshot_every(3);
            crm_core::SqliteStore::open_with(dir.join("crm.db"), options).unwrap()
        };
        let pair = Alternating { handles: [open(10_000), open(1)], next: Default::default() };
        let h = run_history(&setup, &ops, pair, checks);
        let _ = std::fs::remove_dir_all(&dir);
        let h = h?;
        prop_assert_eq!(&h.outcomes, &reference.outcomes, "two handles");
        prop_assert!(same_members(&members_of(h.engine.store()), &expected, true), "two handles");
    }
}

/// Two handles on one SQLite file taking turns: each call goes to the
/// handle after the one the previous call used (read scopes go to both, so
/// neither keeps an old read snapshot open).
#[cfg(feature = "sqlite")]
struct Alternating {
    handles: [crm_core::SqliteStore; 2],
    next: std::sync::atomic::AtomicUsize,
}

#[cfg(feature = "sqlite")]
impl Alternating {
    fn s(&self) -> &crm_core::SqliteStore {
        &self.handles[self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2]
    }
}

#[cfg(feature = "sqlite")]
delegate_store!(Alternating, |w| &w.handles);
