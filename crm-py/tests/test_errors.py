"""Bad input from Python raises the typed error with code and field; nothing crashes."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import crm

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


@pytest.fixture()
def engine() -> crm.Engine:
    e = crm.Engine(crm.Program.default_demo())
    e.record_order(id="o0", member_id="m", amount="100", placed_at=NOW, now=NOW)
    return e


def order(engine: crm.Engine, **kw):
    fields = dict(id="o1", member_id="m", amount="10", placed_at=NOW, now=NOW)
    fields.update(kw)
    return engine.record_order(**fields)


def check(exc_info, cls, code, field):
    err = exc_info.value
    assert type(err) is cls, repr(err)
    assert isinstance(err, crm.CrmError)
    assert err.code == code
    assert err.field == field
    assert str(err)


@pytest.mark.parametrize(
    "amount",
    [float("nan"), float("inf"), float("-inf"), Decimal("NaN"), Decimal("sNaN"), Decimal("Infinity"), "nan", "inf"],
    ids=repr,
)
def test_non_finite_amounts(engine, amount):
    with pytest.raises(crm.ValidationError) as ei:
        order(engine, amount=amount)
    check(ei, crm.ValidationError, "validation_error", "order.amount")


@pytest.mark.parametrize(
    "amount", [-5, "-0.01", Decimal("-1"), -0.5, 10**12, 10**30, Decimal("1e30"), 1e300, "12.34567"], ids=repr
)
def test_negative_absurd_or_overprecise_amounts(engine, amount):
    with pytest.raises(crm.ValidationError) as ei:
        order(engine, amount=amount)
    check(ei, crm.ValidationError, "validation_error", "order.amount")


@pytest.mark.parametrize("amount", [True, [1], {"a": 1}, b"12", object(), "12,50", "1e3", ""], ids=repr)
def test_wrong_amount_types(engine, amount):
    with pytest.raises(crm.ValidationError) as ei:
        order(engine, amount=amount)
    check(ei, crm.ValidationError, "validation_error", "order.amount")


def test_float_rule_rounds_half_away_from_zero_to_minor_unit(engine):
    out = order(engine, id="of", amount=19.999)
    assert engine.member("m").spend == Decimal("120.00")
    assert out.earned == {"reward": 20}
    jpy = dict(crm.Program.default_demo().to_dict(), currency="JPY")
    e2 = crm.Engine(crm.Program.from_dict(jpy))
    e2.record_order(id="j", member_id="m", amount=1234.5, placed_at=NOW, now=NOW)
    assert e2.member("m").spend == Decimal("1235")


@pytest.mark.parametrize(
    "field,value,expected_field",
    [
        ("member_id", 5, "order.member_id"),
        ("member_id", "", "order.member_id"),
        ("member_id", None, "order.member_id"),
        ("id", 1.5, "order.id"),
        ("status", "shipped", "order.status"),
        ("placed_at", "yesterday", "order.placed_at"),
        ("placed_at", 1714564800, "order.placed_at"),
        ("paid_at", NOW - timedelta(days=1), "order.paid_at"),
        ("currency", "EUR", "order.currency"),
        ("items", "abc", "order.items[0]"),
        ("items", [{"sku": "a", "qty": 0, "price": "1"}], "order.items[0].qty"),
        ("items", [{"sku": "a", "qty": 1}], "order.items[0].price"),
        ("items", [{"sku": "a", "qty": 1, "price": "1", "colour": "red"}], "order.items[0].colour"),
    ],
)
def test_bad_order_fields(engine, field, value, expected_field):
    with pytest.raises(crm.ValidationError) as ei:
        order(engine, **{field: value})
    check(ei, crm.ValidationError, "validation_error", expected_field)


def test_naive_datetimes_are_rejected_everywhere(engine):
    naive = datetime(2024, 5, 1, 12)
    cases = [
        (lambda: order(engine, placed_at=naive), "order.placed_at"),
        (lambda: order(engine, now=naive), "now"),
        (lambda: engine.balance("m", "reward", at=naive), "at"),
        (lambda: engine.liability(at=naive), "at"),
        (lambda: engine.run_due(naive), "now"),
        (lambda: engine.expiring("m", "reward", now=naive, days=30), "now"),
        (lambda: engine.record_refund("r", "o0", at=naive, now=NOW), "at"),
        (lambda: engine.create_member("x", now=NOW, profile={"joined_at": naive}), "profile.joined_at"),
        (lambda: order(engine, placed_at="2024-05-01T12:00:00"), "order.placed_at"),
    ]
    for call, field in cases:
        with pytest.raises(crm.ValidationError) as ei:
            call()
        check(ei, crm.ValidationError, "validation_error", field)


def test_aware_datetimes_in_any_zone_are_accepted(engine):
    cst = timezone(timedelta(hours=8))
    engine.record_order(id="z", member_id="m", amount="1", placed_at=datetime(2024, 5, 1, 20, tzinfo=cst), now=NOW)
    lot = [lot for lot in engine.lots("m") if lot.source.get("order_id") == "z"][0]
    assert lot.earned_at == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize("points,field", [(-5, "points"), (0, "points"), (10**30, "points"), (1.5, "points"),
                                           (True, "points"), ("5", "points"), (math.nan, "points")], ids=repr)
def test_bad_points(engine, points, field):
    with pytest.raises(crm.ValidationError) as ei:
        engine.redeem("m", points, point_type="reward", now=NOW, idempotency_key="k")
    check(ei, crm.ValidationError, "validation_error", field)


def test_absurd_adjustment(engine):
    with pytest.raises(crm.ValidationError) as ei:
        engine.adjust("m", "reward", 10**13, reason="x", actor="ops", now=NOW, idempotency_key="adj")
    check(ei, crm.ValidationError, "validation_error", "delta")


def test_insufficient_points(engine):
    with pytest.raises(crm.InsufficientPoints) as ei:
        engine.redeem("m", 101, point_type="reward", now=NOW, idempotency_key="k")
    check(ei, crm.InsufficientPoints, "insufficient_points", None)


def test_unknown_member_and_point_type(engine):
    with pytest.raises(crm.NotFound) as ei:
        engine.balance("nobody", "reward", at=NOW)
    check(ei, crm.NotFound, "not_found", None)
    with pytest.raises(crm.NotFound):
        engine.redeem("nobody", 1, point_type="reward", now=NOW, idempotency_key="k")
    with pytest.raises(crm.NotFound):
        engine.member("nobody")
    with pytest.raises(crm.ValidationError) as ei:
        engine.balance("m", "gold", at=NOW)
    check(ei, crm.ValidationError, "validation_error", "point_type")
    assert engine.find_by_identity("wechat", "nobody") is None


def test_idempotency_conflict(engine):
    engine.redeem("m", 1, point_type="reward", now=NOW, idempotency_key="k")
    again = engine.redeem("m", 1, point_type="reward", now=NOW, idempotency_key="k")
    assert again.points == 1
    with pytest.raises(crm.Conflict) as ei:
        engine.redeem("m", 2, point_type="reward", now=NOW, idempotency_key="k")
    check(ei, crm.Conflict, "conflict", None)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(member_id=None), "member_id"),
        (dict(idempotency_key=""), "idempotency_key"),
        (dict(idempotency_key=5), "idempotency_key"),
        (dict(point_type=None), "point_type"),
        (dict(reason=5), "reason"),
    ],
)
def test_wrong_argument_types(engine, kwargs, field):
    args = dict(member_id="m", points=1, point_type="reward", now=NOW, idempotency_key="k")
    args.update(kwargs)
    member_id = args.pop("member_id")
    points = args.pop("points")
    with pytest.raises(crm.ValidationError) as ei:
        engine.redeem(member_id, points, **args)
    check(ei, crm.ValidationError, "validation_error", field)


def test_bad_member_input(engine):
    cases = [
        (dict(profile={"email": "not-an-email"}), "profile.email"),
        (dict(profile={"nickname": "x"}), "profile.nickname"),
        (dict(profile={"birthday": date(2999, 1, 1)}), "profile.birthday"),
        (dict(profile={"gender": "robot"}), "profile.gender"),
        (dict(profile={"timezone": "Mars/Base"}), "profile.timezone"),
        (dict(profile="Alice"), "profile"),
        (dict(identities=[("wechat",)]), "identities[0]"),
        (dict(identities="wechat"), "identities"),
        (dict(tags="vip"), "tags"),
        (dict(consents={"sms": "yes"}), "consents.sms"),
    ]
    for kwargs, field in cases:
        with pytest.raises(crm.ValidationError) as ei:
            engine.create_member("new", now=NOW, **kwargs)
        check(ei, crm.ValidationError, "validation_error", field)


def test_bad_query_arguments(engine):
    for call, field in [
        (lambda: engine.statement("m", "reward", limit=0), "limit"),
        (lambda: engine.statement("m", "reward", offset=-1), "offset"),
        (lambda: engine.expiring("m", "reward", now=NOW, days=-1), "days"),
        (lambda: engine.iter_statement("m", "reward", page_size=0), "page_size"),
    ]:
        with pytest.raises(crm.ValidationError) as ei:
            call()
        check(ei, crm.ValidationError, "validation_error", field)


BASE = {"version": 1, "name": "T", "timezone": "Asia/Shanghai", "currency": "CNY", "point_types": [{"id": "reward"}]}


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"version": 7}, "version"),
        ({"timezone": "Mars/Base"}, "timezone"),
        ({"name": 5}, "name"),
        ({"colour": "red"}, "colour"),
        ({"currency": "yen"}, "currency"),
        ({"value_per_point": float("nan")}, "value_per_point"),
        ({"point_types": [{"id": "reward", "expiry": {"type": "days_after_earning", "days": 0}}]},
         "point_types[0].expiry.days"),
        ({"earn": {"rules": [{"id": "r", "point_type": "gold", "points_per_unit": "1"}]}}, "earn.rules[0].point_type"),
        ({"earn": {"rules": [{"id": "r", "point_type": "reward", "points_per_unit": object()}]}},
         "earn.rules[0].points_per_unit"),
    ],
)
def test_malformed_config_dict(patch, field):
    with pytest.raises(crm.ConfigError) as ei:
        crm.Program.from_dict({**BASE, **patch})
    check(ei, crm.ConfigError, "config_error", field)


def test_malformed_config_documents(tmp_path: Path):
    with pytest.raises(crm.ConfigError) as ei:
        crm.Program.from_dict({"version": 1})
    assert ei.value.code == "config_error" and ei.value.field == "programme"
    with pytest.raises(crm.ConfigError) as ei:
        crm.Program.from_dict(["not", "a", "dict"])
    assert ei.value.field == "programme"
    with pytest.raises(crm.ConfigError) as ei:
        crm.Program.from_toml('version = 1\nname = \n')
    assert ei.value.field.startswith("line 2")
    with pytest.raises(crm.ConfigError) as ei:
        crm.Program.from_json("{")
    assert ei.value.field.startswith("line 1")
    bad = tmp_path / "bad.toml"
    bad.write_text('version = 1\nname = "x"\ntimezone = "Nowhere/City"\n')
    with pytest.raises(crm.ConfigError) as ei:
        crm.Program.from_file(bad)
    assert ei.value.field == "timezone"
    with pytest.raises(crm.ConfigError):
        crm.Program.from_file(tmp_path / "missing.toml")
    with pytest.raises(crm.ValidationError) as ei:
        crm.Program.from_json(b"{}")
    assert ei.value.field == "text"


def test_store_errors_and_bad_engine_arguments(tmp_path: Path):
    with pytest.raises(crm.StoreError) as ei:
        crm.Engine(crm.Program.default_demo(), tmp_path / "no" / "such" / "dir" / "x.db")
    check(ei, crm.StoreError, "store_error", None)
    with pytest.raises(crm.ValidationError) as ei:
        crm.Engine("not a program")
    assert ei.value.field == "program"
    with pytest.raises(crm.ValidationError) as ei:
        crm.Engine(crm.Program.default_demo(), 42)
    assert ei.value.field == "path"


def test_errors_from_python_code_have_defaults():
    err = crm.NotFound("x")
    assert err.code == "not_found" and err.field is None
    assert crm.CrmError("x").code == "internal_error"


def test_hostile_objects_do_not_crash(engine):
    class Evil:
        def __float__(self):
            raise RuntimeError("boom")

        def __index__(self):
            raise RuntimeError("boom")

    for bad in (Evil(), type("X", (), {})()):
        with pytest.raises(Exception):
            order(engine, amount=bad)
    loop: list = []
    loop.append(loop)
    with pytest.raises(crm.ValidationError):
        engine.create_member("loop", now=NOW, profile={"attributes": {"x": loop}})


def test_interpreter_survives_a_barrage_in_a_subprocess():
    """Random garbage to every public method in a child process: it must exit cleanly."""
    code = r"""
import itertools, math, datetime as dt, decimal, crm
e = crm.Engine(crm.Program.default_demo())
values = [None, 0, -1, 10**40, 1.5, math.nan, math.inf, "", "x"*500, b"b", [], {}, (1,), object(),
          decimal.Decimal("NaN"), dt.datetime(2024,1,1), dt.date(2024,1,1), True]
names = [n for n in dir(e) if not n.startswith("_") and callable(getattr(e, n))]
count = 0
for n in names:
    for v in values:
        for args in ([v], [v, v], [v, v, v]):
            try:
                getattr(e, n)(*args, now=v)
            except (crm.CrmError, TypeError):
                pass
            count += 1
print("ok", count)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")
