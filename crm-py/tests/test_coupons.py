"""Coupons through the Python API: issue (for points too), redeem with every
condition, idempotency by order, revoke, the checkout quote, batch issue to a
segment, and the code helpers. The rules live in crm-core; this checks the
conversions (Decimal, aware datetimes, typed errors)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict

import pytest

import crm

UTC = dt.timezone.utc


def t(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, tzinfo=UTC)


PROGRAM: Dict[str, Any] = {
    "version": 1,
    "name": "Coupons",
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
    "value_per_point": "0.01",
    "point_types": [{"id": "reward"}],
    "earn": {"rules": [{"id": "base", "point_type": "reward", "points_per_unit": "10"}]},
    "coupons": {
        "return_on_refund": True,
        "templates": [
            {
                "id": "ten_off",
                "benefit": {"type": "fixed_amount", "amount": "10"},
                "min_spend": "50",
                "validity": {"type": "days_from_issue", "days": 7},
                "points_price": {"point_type": "reward", "points": 500},
            },
            {
                "id": "pct",
                "benefit": {"type": "percentage", "percent": "15", "cap": "20"},
                "validity": {"type": "fixed", "from": "2024-03-01", "until": "2024-03-31"},
                "channels": ["app"],
            },
        ],
    },
}


@pytest.fixture
def engine() -> crm.Engine:
    e = crm.Engine(crm.Program.from_dict(PROGRAM))
    e.create_member("ann", now=t(1))
    return e


def test_issue_redeem_is_idempotent_by_order(engine: crm.Engine) -> None:
    engine.record_order(id="o1", member_id="ann", amount="120.00", placed_at=t(1, 2), now=t(1, 2))
    issued = engine.issue_coupon("ann", "ten_off", now=t(1, 3))
    assert issued.type == "coupon_issued"
    assert issued.expires_at == dt.datetime(2024, 3, 8, 16, tzinfo=UTC)  # end of 8 March in Shanghai
    code = issued.code
    typed = "-".join([code[:4], code[4:8], code[8:]]).lower()
    used = engine.redeem_coupon("ann", typed, "o1", now=t(1, 4))
    assert (used.type, used.discount, used.cost) == ("coupon_redeemed", Decimal("10"), Decimal("10"))
    assert engine.redeem_coupon("ann", code, "o1", now=t(2), idempotency_key="again") == used
    statuses = [(c["code"], c["status"]) for c in engine.coupons("ann", now=t(2))]
    assert statuses == [(code, "redeemed")]
    assert engine.coupons("ann", now=t(2))[0]["redeemed"]["discount"] == Decimal("10")


def test_conditions_raise_typed_errors(engine: crm.Engine) -> None:
    engine.record_order(id="small", member_id="ann", amount="40", placed_at=t(1, 2), now=t(1, 2))
    code = engine.issue_coupon("ann", "ten_off", now=t(1, 3)).code
    with pytest.raises(crm.ValidationError) as e:
        engine.redeem_coupon("ann", code, "small", now=t(1, 4))
    assert e.value.field == "order_id" and "needs a spend of 50" in str(e.value)
    with pytest.raises(crm.ValidationError) as e:
        engine.redeem_coupon("ann", code[:-1] + ("2" if code[-1] != "2" else "3"), "small", now=t(1, 4))
    assert e.value.field == "code"
    with pytest.raises(crm.ValidationError) as e:
        engine.issue_coupon("ann", "nope", now=t(1, 4))
    assert e.value.field == "template"
    with pytest.raises(crm.NotFound):
        engine.redeem_coupon("ann", crm.generate_coupon_codes(1)[0], "small", now=t(1, 4))


def test_exchange_for_points_and_revoke(engine: crm.Engine) -> None:
    engine.record_order(id="o1", member_id="ann", amount="40", placed_at=t(1, 2), now=t(1, 2))
    with pytest.raises(crm.InsufficientPoints):
        engine.issue_coupon("ann", "ten_off", for_points=True, now=t(1, 3))
    assert engine.coupons("ann", now=t(1, 3)) == []
    engine.record_order(id="o2", member_id="ann", amount="30", placed_at=t(1, 4), now=t(1, 4))
    issued = engine.issue_coupon("ann", "ten_off", for_points=True, now=t(1, 5), idempotency_key="swap")
    assert issued.points == 500
    assert engine.issue_coupon("ann", "ten_off", for_points=True, now=t(1, 6), idempotency_key="swap") == issued
    assert engine.balance("ann", "reward", at=t(1, 7)).available == 200
    revoked = engine.revoke_coupon("ann", issued.code, reason="changed mind", now=t(1, 8))
    assert (revoked.type, revoked.points) == ("coupon_revoked", 500)
    assert engine.balance("ann", "reward", at=t(1, 9)).available == 700


def test_quote_ranks_and_caps_points(engine: crm.Engine) -> None:
    engine.record_order(id="o1", member_id="ann", amount="300", placed_at=t(1, 2), now=t(1, 2))
    ten = engine.issue_coupon("ann", "ten_off", now=t(1, 3)).code
    pct = engine.issue_coupon("ann", "pct", now=t(1, 3)).code
    q = engine.quote("ann", {"amount": Decimal("100.00"), "channel": "app"}, now=t(1, 4))
    assert q["best"] == pct  # 15% of 100 = 15.00 beats 10
    assert [c["code"] for c in q["coupons"]] == [pct, ten]
    assert q["coupons"][0]["discount"] == Decimal("15.00")
    assert q["amount_after_coupon"] == Decimal("85.00")
    assert q["points"]["max_points"] == 3000  # half of 85.00 = 4250 points, 3000 held
    q = engine.quote("ann", {"amount": "30", "channel": "web"}, now=t(1, 4))
    assert q["best"] is None
    assert {n["code"] for n in q["not_applicable"]} == {ten, pct}
    with pytest.raises(crm.ValidationError) as e:
        engine.quote("ann", {"amount": "30", "colour": "red"}, now=t(1, 4))
    assert e.value.field.startswith("cart")


def test_batch_issue_to_a_segment(engine: crm.Engine) -> None:
    for m, amount in [("ann", "100"), ("bob", "5"), ("cy", "200")]:
        engine.record_order(id=f"o-{m}", member_id=m, amount=amount, placed_at=t(1, 2), now=t(1, 2))
    first = engine.issue_coupons_to_segment("spring", "spend(365d) > 50", "ten_off", now=t(1, 3))
    assert [m for m, _ in first["issued"]] == ["ann", "cy"]
    assert engine.issue_coupons_to_segment("spring", "spend(365d) > 50", "ten_off", now=t(1, 4)) == first


def test_stock_and_budget_over_all_members() -> None:
    program = {**PROGRAM, "coupons": {"templates": [
        {**PROGRAM["coupons"]["templates"][0], "total_limit": 2, "budget": "15"},
    ]}}
    e = crm.Engine(crm.Program.from_dict(program))
    for m in ["ann", "bob", "cy"]:
        e.create_member(m, now=t(1))
    batch = e.issue_coupons_to_segment("all", "orders(365d) = 0", "ten_off", now=t(1, 3))
    # 10.00 each within 15.00: the second is over budget before the stock of 2 runs out.
    assert [m for m, _ in batch["issued"]] == ["ann"]
    assert batch["exhausted"] is True
    usage = e.coupon_usage("ten_off")
    assert usage["issued"] == 1 and usage["remaining"] == 1
    assert usage["committed"] == Decimal("10") and usage["budget_remaining"] == Decimal("5")
    with pytest.raises(crm.ValidationError) as err:
        e.issue_coupon("bob", "ten_off", now=t(1, 4))
    assert err.value.field == "template"
    with pytest.raises(crm.ValidationError):
        e.coupon_usage("nope")


def test_code_helpers() -> None:
    codes = crm.generate_coupon_codes(1000)
    assert len(set(codes)) == 1000
    assert all(len(c) == 13 and not set(c) & set("01OIL") for c in codes)
    assert crm.check_coupon_code(codes[0].lower()) == codes[0]
    with pytest.raises(crm.ValidationError):
        crm.check_coupon_code("AAAA")
