"""The Pythonic surface: programmes, engine stores, result objects, statements, threads."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import crm

T0 = datetime(2024, 1, 1, 10, tzinfo=timezone.utc)

TOML = """
version = 1
name = "Tea club"
timezone = "Asia/Shanghai"
currency = "CNY"
value_per_point = "0.01"

[[point_types]]
id = "reward"
expiry = { type = "days_after_earning", days = 365 }

[[point_types]]
id = "growth"
spendable = false

[[earn.rules]]
id = "base"
point_type = "reward"
points_per_unit = "1"
rounding = "floor"

[[earn.rules]]
id = "growth"
point_type = "growth"
points_per_unit = "1"

[[earn.bonuses]]
id = "welcome"
action = "sign_up"
point_type = "reward"
points = 50
"""


def test_program_constructors_agree(tmp_path: Path):
    from_toml = crm.Program.from_toml(TOML)
    path = tmp_path / "programme.toml"
    path.write_text(TOML, encoding="utf-8")
    from_file = crm.Program.from_file(path)
    from_str_path = crm.Program.from_file(str(path))
    from_dict = crm.Program.from_dict(from_toml.to_dict())
    from_json = crm.Program.from_json(from_toml.to_json())
    assert from_toml == from_file == from_str_path == from_dict == from_json
    assert from_toml.name == "Tea club" and from_toml.timezone == "Asia/Shanghai" and from_toml.currency == "CNY"
    assert from_toml.point_types == ["reward", "growth"]
    assert repr(from_toml) == "Program(name='Tea club', timezone='Asia/Shanghai', currency='CNY')"
    # Decimal values are accepted where the JSON form has decimal strings
    d = from_toml.to_dict()
    d["value_per_point"] = Decimal("0.02")
    assert crm.Program.from_dict(d).to_dict()["value_per_point"] == "0.02"
    demo = crm.Program.default_demo()
    assert demo.currency == "USD" and demo.point_types == ["reward"]
    assert demo != from_toml


def test_members_identities_consent_merge_erase():
    e = crm.Engine(crm.Program.from_toml(TOML))
    out = e.create_member(
        "alice",
        now=T0,
        profile={"name": "Alice", "birthday": date(1990, 5, 17), "email": "a@example.com"},
        identities=[("wechat", "wx-alice"), {"channel": "phone", "external_id": "13800000000"}],
        tags=["vip"],
        consents={"sms": True, "email": False},
    )
    assert out.type == "member" and out.member_id == "alice"
    e.create_member("alice2", now=T0, identities=[("taobao", "tb-alice")])
    assert e.find_by_identity("wechat", "wx-alice") == "alice"
    # Explicit keys here; test_default_keys_of_content_commands covers the defaults.
    e.link_identity("alice", "app", "app-1", now=T0, idempotency_key="link-1")
    e.unlink_identity("alice", "app", "app-1", now=T0 + timedelta(seconds=1), idempotency_key="unlink-1")
    e.add_tag("alice", "tea", now=T0, idempotency_key="tag-1")
    e.remove_tag("alice", "vip", now=T0, idempotency_key="tag-2")
    e.set_consent("alice", "email", True, now=T0, idempotency_key="consent-1")
    e.update_profile("alice", {"region": "Shanghai", "clear": ["email"]}, now=T0, idempotency_key="profile-1")
    m = e.member("alice")
    assert m.status == "active" and m.tags == ["tea"]
    assert m.consents == {"email": True, "sms": True}
    assert m.profile["name"] == "Alice" and m.profile["birthday"] == date(1990, 5, 17)
    assert m.profile["email"] is None and m.profile["region"] == "Shanghai"
    assert ("wechat", "wx-alice") in m.identities and ("app", "app-1") not in m.identities
    e.record_order(id="o1", member_id="alice2", amount="30", placed_at=T0, now=T0)
    merged = e.merge("alice", "alice2", now=T0 + timedelta(hours=1))
    assert merged.type == "merge" and merged.survivor == "alice"
    assert e.find_by_identity("taobao", "tb-alice") == "alice"
    assert e.member("alice2").status == "merged" and e.member("alice2").merged_into == "alice"
    assert e.resolve("alice2").id == "alice"
    assert e.balance("alice2", "reward", at=T0 + timedelta(hours=2)).available == 50 + 50 + 30
    erased = e.erase("alice", now=T0 + timedelta(hours=3))
    assert erased.type == "erasure"
    gone = e.member("alice")
    assert gone.status == "erased" and gone.profile["name"] is None
    assert e.balance("alice", "reward", at=T0 + timedelta(hours=3)).available == 130


def test_orders_refunds_ledger_commands_and_queries(tmp_path: Path):
    e = crm.Engine(crm.Program.from_toml(TOML), tmp_path / "ledger.db")
    o = e.record_order(
        {
            "id": "o1",
            "member_id": "bob",
            "amount": Decimal("99.99"),
            "placed_at": T0,
            "items": [{"sku": "tea", "qty": 3, "price": "20.00"}, {"sku": "cup", "qty": 1, "price": 45}],
        },
        now=T0,
    )
    assert o.earned == {"growth": 99, "reward": 99 + 50} or o.earned["reward"] >= 99
    with pytest.raises(crm.ValidationError):
        e.record_order({"id": "x"}, id="x", now=T0)
    placed = e.record_order(id="o2", member_id="bob", amount=10, placed_at=T0, status="placed", now=T0)
    assert placed.earned == {}
    paid = e.set_order_status("o2", "paid", now=T0 + timedelta(minutes=5))
    assert paid.earned["reward"] == 10
    refund = e.record_refund("rf1", "o1", at=T0 + timedelta(days=1), now=T0 + timedelta(days=1), amount="10.00")
    assert refund.type == "refund" and refund.amount == Decimal("10.00")
    assert refund.clawbacks[0].point_type in ("growth", "reward") and refund.clawbacks[0].taken == 9
    items = e.record_refund("rf2", "o1", at=T0 + timedelta(days=2), now=T0 + timedelta(days=2), items=[("tea", 1)])
    assert items.type == "refund"
    red = e.redeem("bob", 20, point_type="reward", now=T0 + timedelta(days=3), idempotency_key="red-1", reason="mug")
    assert red.points == 20 and red.allocations[0].points == 20 and isinstance(red.allocations[0], crm.Allocation)
    rev = e.reverse_redemption("bob", "red-1", now=T0 + timedelta(days=4), idempotency_key="rev-1")
    assert rev.type == "reversal" and rev.points == 20
    adj = e.adjust("bob", "reward", -5, reason="goodwill fix", actor="ops", now=T0 + timedelta(days=4),
                   idempotency_key="adj-1")
    assert adj.delta == -5
    act = e.record_action("bob", "review", "review-1", now=T0 + timedelta(days=4))
    assert act.type == "action"
    exp = e.expiring("bob", "reward", now=T0, days=366)
    assert exp.total > 0 and exp.buckets[0][0].tzinfo is not None
    liab = e.liability(at=T0 + timedelta(days=5))
    assert liab.members == 1 and isinstance(liab.value, Decimal)
    assert liab["reward"].outstanding == e.balance("bob", "reward", at=T0 + timedelta(days=5)).total
    with pytest.raises(KeyError):
        liab["nope"]
    due = e.run_due(T0 + timedelta(days=400))
    assert due.type == "due" and due.expired > 0
    assert e.run_due(T0 + timedelta(days=400)) == due
    # as-of balance
    before = e.balance("bob", "reward", at=T0 + timedelta(days=2, hours=1))
    after = e.balance("bob", "reward", at=T0 + timedelta(days=401))
    assert before.available > 0 and after.available == 0
    assert isinstance(before.total, int) and before.to_dict() == {"available": before.available, "pending": 0, "debt": 0}
    lots = e.lots("bob")
    assert all(isinstance(lot, crm.Lot) for lot in lots)
    # the SQLite file persists: reopen and read the same state
    again = crm.Engine(crm.Program.from_toml(TOML), tmp_path / "ledger.db")
    at = T0 + timedelta(days=5)
    assert again.balance("bob", "reward", at=at) == e.balance("bob", "reward", at=at)
    assert [x.to_dict() for x in again.iter_statement("bob", "reward")] == e.statement("bob", "reward").to_dict()["entries"]
    assert again.path == str(tmp_path / "ledger.db")


def test_sqlite_store_options(tmp_path: Path):
    """No cache, a snapshot on every commit and late checkpoints store the same members."""
    path = tmp_path / "options.db"
    e = crm.Engine.open_sqlite(
        crm.Program.default_demo(), path, synchronous="normal", busy_timeout_ms=1000,
        member_cache=0, snapshot_every=1, checkpoint_bytes=64 << 20,
    )
    for i in range(40):
        e.record_order(id=f"s{i}", member_id=f"p{i % 4}", amount="10.00", placed_at=T0, now=T0)
    assert e.balance("p0", "reward", at=T0).available == 100
    del e
    again = crm.Engine(crm.Program.default_demo(), path, snapshot_every=32, member_cache=100)
    assert again.balance("p0", "reward", at=T0).available == 100
    assert again.liability(at=T0).members == 4


@pytest.mark.parametrize(
    "option, value",
    [
        ("synchronous", "sometimes"),
        ("member_cache", -1),
        ("snapshot_every", 0),
        ("checkpoint_bytes", 1024),
        ("busy_timeout_ms", -5),
        ("member_cache", 1.5),
    ],
)
def test_sqlite_store_options_are_checked(tmp_path: Path, option: str, value: object):
    with pytest.raises(crm.ValidationError) as err:
        crm.Engine.open_sqlite(crm.Program.default_demo(), tmp_path / "x.db", **{option: value})
    assert err.value.field == option


def test_default_keys_of_content_commands():
    """Without a key the core's default applies; a retry at the same `now` is recognised."""
    e = crm.Engine(crm.Program.default_demo())
    e.create_member("alice", now=T0)
    long_id = "wx-" * 40
    first = e.link_identity("alice", "wechat", long_id, now=T0)
    assert e.link_identity("alice", "wechat", long_id, now=T0) == first
    e.set_consent("alice", "email", True, now=T0)
    e.update_profile("alice", {"name": "Alice Wonderland", "region": "Shanghai"}, now=T0)
    e.add_tag("alice", "vip", now=T0)
    assert e.find_by_identity("wechat", long_id) == "alice"
    assert e.member("alice").tags == ["vip"]


def test_statement_pagination_and_iteration():
    e = crm.Engine(crm.Program.default_demo())
    for i in range(25):
        e.record_order(id=f"o{i}", member_id="m", amount=i + 1, placed_at=T0 + timedelta(hours=i), now=T0)
    page = e.statement("m", "reward", limit=10)
    assert len(page) == 10 and page.total == 25 and page.next_offset == 10
    assert [x.points for x in page] == list(range(1, 11))
    assert page[0].kind == "earn" and page[-1].reference == "o9"
    with pytest.raises(IndexError):
        page[10]
    last = e.statement("m", "reward", offset=20, limit=10)
    assert len(last.entries) == 5 and last.next_offset is None
    it = e.iter_statement("m", "reward", page_size=7)
    assert iter(it) is it
    entries = list(it)
    assert len(entries) == 25 and entries[-1].balance == sum(range(1, 26))
    assert entries[:10] == page.entries
    assert list(e.iter_statement("m", "reward")) == entries
    assert "StatementPage(entries=<10 entries>, total=25, next_offset=10)" == repr(page)


def test_results_are_frozen_with_repr_and_eq():
    e = crm.Engine(crm.Program.default_demo())
    o = e.record_order(id="o1", member_id="m", amount="12.5", placed_at=T0, now=T0)
    assert repr(o) == "Outcome(type='order', earned={'reward': 12}, lots=['m#1'], member_id='m', order_id='o1')"
    assert o == e.record_order(id="o1", member_id="m", amount="12.5", placed_at=T0, now=T0)
    assert o.fields["order_id"] == "o1" and o.to_dict()["type"] == "order"
    with pytest.raises(AttributeError):
        o.points
    b = e.balance("m", "reward", at=T0)
    assert repr(b) == "Balance(available=12, pending=0, debt=0)"
    assert b == e.balance("m", "reward", at=T0) and b != e.balance("m", "reward", at=T0 - timedelta(days=1))
    with pytest.raises(AttributeError):
        b.available = 5  # type: ignore[misc]
    lot = e.lots("m")[0]
    assert repr(lot).startswith("Lot(id='m#1', point_type='reward', granted=12, remaining=12")
    assert lot.source == {"type": "order", "order_id": "o1", "rule_id": "base"}
    m = e.member("m")
    assert repr(m) == "Member(id='m', status='active', tags=[], order_count=1, spend=Decimal('12.5'))"
    assert m == e.member("m")
    assert m.order_ids == ["o1"] and m.first_order_at == T0
    assert repr(e).startswith("Engine(program='Default'")
    assert b.__eq__(5) is NotImplemented


def test_gil_is_released_for_engine_calls(tmp_path: Path):
    e = crm.Engine(crm.Program.default_demo(), tmp_path / "threads.db")
    errors: list = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                e.record_order(id=f"t{n}-{i}", member_id=f"m{n}", amount="1", placed_at=T0, now=T0)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert e.liability(at=T0).point_types[0].outstanding == 80


def test_docstrings_on_every_public_name():
    for name in crm.__all__:
        obj = getattr(crm, name)
        if name == "__version__":
            continue
        assert obj.__doc__, name
        for attr, value in vars(obj).items():
            if attr.startswith("_") or attr in ("code", "field"):
                continue
            assert getattr(value, "__doc__", None), f"{name}.{attr}"
