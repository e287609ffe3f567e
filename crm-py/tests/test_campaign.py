"""Campaign measurement from Python: the documented hold-out split, a planted
effect found and an absent one not, the report as DataFrames, field-named errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Dict, List, Tuple

import pytest

import crm

UTC = dt.timezone.utc
START = dt.datetime(2024, 3, 1, tzinfo=UTC)
M64 = (1 << 64) - 1


def assignment_hash(seed: int, member: str) -> int:
    """FNV-1a over the seed's 8 little-endian bytes and the id, then fmix64 (as documented in Rust)."""
    h = 0xCBF29CE484222325
    for b in seed.to_bytes(8, "little") + member.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


def u(stream: int, member: str) -> float:
    return (assignment_hash(stream, member) >> 11) / float(1 << 53)


def held_out(seed: int, member: str, share: Decimal) -> bool:
    return (assignment_hash(seed, member) >> 11) < int(share * (1 << 53))


def campaign(**over: Any) -> Dict[str, Any]:
    c: Dict[str, Any] = {
        "id": "spring",
        "audience": {"rule": "orders(365d) >= 1"},
        "seed": 2024,
        "holdout": Decimal("0.3"),
        "starts_at": START,
        "ends_at": START + dt.timedelta(days=14),
        "attribution_days": 7,
        "repurchase_days": 60,
        "cost": {"points_per_member": 20, "coupon_value": Decimal("100.00")},
    }
    c.update(over)
    return c


def engine(planted: bool, n: int = 1000) -> Tuple[crm.Engine, Dict[str, Any]]:
    e = crm.Engine(crm.Program.default_demo())
    c = campaign()
    history: Dict[str, List[Any]] = {"order_id": [], "member_id": [], "amount": [], "placed_at": []}
    window: Dict[str, List[Any]] = {"order_id": [], "member_id": [], "amount": [], "placed_at": []}

    def add(frame: Dict[str, List[Any]], oid: str, m: str, amount: str, at: dt.datetime) -> None:
        frame["order_id"].append(oid)
        frame["member_id"].append(m)
        frame["amount"].append(Decimal(amount))
        frame["placed_at"].append(at)

    for i in range(n):
        m = f"m{i:04d}"
        add(history, f"h{i}", m, "30", dt.datetime(2023, 7, 1, tzinfo=UTC) + dt.timedelta(days=i % 150))
        at = START + dt.timedelta(days=2, hours=i % 200)
        if u(1, m) < 0.2:
            add(window, f"w{i}", m, "50", at)
        if planted and not held_out(2024, m, c["holdout"]) and u(2, m) < 0.2:
            add(window, f"x{i}", m, "70", at + dt.timedelta(hours=1))
    assert not e.import_orders(history, now=dt.datetime(2024, 2, 1, tzinfo=UTC)).rejected
    assert not e.import_orders(window, now=dt.datetime(2024, 4, 1, tzinfo=UTC)).rejected
    return e, c


def test_the_split_is_the_documented_hash() -> None:
    e, c = engine(False, n=300)
    members = e.campaign_members(c)
    ids = [f"m{i:04d}" for i in range(300)]
    assert members["control"] == sorted(m for m in ids if held_out(2024, m, Decimal("0.3")))
    assert members["treatment"] == sorted(m for m in ids if not held_out(2024, m, Decimal("0.3")))
    assert assignment_hash(42, "alice") == 0xA131BFD835CAABF2


def test_a_planted_effect_is_found() -> None:
    e, c = engine(True)
    r = e.campaign_report(c, at=dt.datetime(2024, 5, 1, tzinfo=UTC))
    assert isinstance(r, crm.CampaignReport) and r.complete
    assert r.targeted == 1000 == r.treatment["members"] + r.control["members"]
    conv = r.conversion_uplift
    assert conv["significant"] and conv["low"] > 0, conv
    assert r.revenue_uplift["significant"] and r.revenue_uplift["low"] > 0
    assert isinstance(r.incremental_revenue, Decimal) and r.incremental_revenue > 0
    assert r.cost == {
        "points": 20 * r.treatment["members"],
        "points_value": Decimal("0.20") * r.treatment["members"],
        "coupon_value": Decimal("100.00"),
        "total": Decimal("0.20") * r.treatment["members"] + Decimal("100.00"),
    }
    total = r.cost["total"]
    assert r.roi == ((r.incremental_revenue - total) / total).quantize(Decimal("0.0001"))
    assert r.to_dict()["conversion_uplift"]["significant"] is True
    assert "CampaignReport(campaign_id='spring'" in repr(r)


def test_no_effect_is_found_where_none_was_planted() -> None:
    e, c = engine(False)
    r = e.campaign_report(c, at=dt.datetime(2024, 5, 1, tzinfo=UTC))
    for up in (r.conversion_uplift, r.revenue_uplift):
        assert not up["significant"] and up["low"] <= 0 <= up["high"], up


def test_reports_as_data_frames() -> None:
    pd = pytest.importorskip("pandas")
    e, c = engine(True, n=400)
    r = e.campaign_report(c, at=dt.datetime(2024, 5, 1, tzinfo=UTC))
    df = r.to_frame()
    assert isinstance(df, pd.DataFrame)
    assert list(df["group"]) == ["treatment", "control"]
    assert list(df["members"]) == [r.treatment["members"], r.control["members"]]
    assert df.loc[0, "revenue_per_member"] == r.treatment["revenue_per_member"]
    up = r.uplift_frame()
    assert list(up["measure"]) == ["conversion_rate", "revenue_per_member"]
    assert up.loc[0, "uplift"] == r.conversion_uplift["estimate"]
    assert bool(up.loc[0, "significant"]) == r.conversion_uplift["significant"]
    pl = pytest.importorskip("polars")
    assert isinstance(r.to_frame(backend="polars"), pl.DataFrame)
    assert r.to_frame(backend="dict")["group"] == ["treatment", "control"]


def test_errors_name_the_field() -> None:
    e, c = engine(False, n=10)
    at = dt.datetime(2024, 5, 1, tzinfo=UTC)
    with pytest.raises(crm.ValidationError) as err:
        e.campaign_report(campaign(holdout=Decimal("1")), at=at)
    assert err.value.field == "campaign.holdout"
    with pytest.raises(crm.ValidationError) as err:
        e.campaign_report(c, at=dt.datetime(2024, 2, 1, tzinfo=UTC))
    assert err.value.field == "at"
    with pytest.raises(crm.ValidationError) as err:
        e.campaign_report(c, at=dt.datetime(2024, 5, 1))
    assert err.value.field == "at"
    with pytest.raises(crm.ValidationError) as err:
        e.campaign_report("spring", at=at)  # type: ignore[arg-type]
    assert err.value.field == "campaign"
    with pytest.raises(crm.ValidationError) as err:
        e.campaign_report(campaign(audience={"rule": "orders(365d) >="}), at=at)
    assert err.value.field == "campaign.audience.rule" and "column 16" in str(err.value)
