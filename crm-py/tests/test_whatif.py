"""``crm.compare_programmes``: the default programme's column equals a replay
of the same orders through an Engine, and the shared fixture gives the figures
Rust and Node give (``examples/data/whatif_small.json``)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pytest

import crm

REPO = Path(__file__).resolve().parents[2]
FIXTURE = json.loads((REPO / "examples" / "data" / "whatif_small.json").read_text(encoding="utf-8"))
PROGRAMS = {name.split(".")[0]: crm.Program.from_file(REPO / "examples" / "programs" / name) for name in FIXTURE["programs"]}
UNTIL = dt.datetime.fromisoformat(FIXTURE["until"].replace("Z", "+00:00"))


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def orders_rows() -> List[Dict[str, Any]]:
    return [dict(o, amount=Decimal(o["amount"]), placed_at=ts(o["placed_at"])) for o in FIXTURE["orders"]]


def refunds() -> List[Dict[str, Any]]:
    return [dict(r, at=ts(r["at"])) for r in FIXTURE["refunds"]]


def test_default_column_equals_an_engine_replay() -> None:
    c = crm.compare_programmes(orders_rows(), {"default": PROGRAMS["default"]}, until=UNTIL)
    f = c.to_dict()["programmes"][0]
    e = crm.Engine(crm.Program.default_demo())
    for o in sorted(orders_rows(), key=lambda o: o["placed_at"]):
        e.record_order(id=o["order_id"], member_id=o["member_id"], amount=o["amount"], placed_at=o["placed_at"], now=o["placed_at"])
    e.run_due(UNTIL)
    liability = e.liability(at=UNTIL)
    issued = sum(int(Decimal(o["amount"])) for o in FIXTURE["orders"])
    assert f["points_issued"] == issued
    assert f["points_outstanding"] == liability["reward"].outstanding
    assert Decimal(f["liability_value"]) == liability.value
    assert f["members"] == liability.members


def test_the_shared_fixture_gives_the_figures_of_rust_and_node() -> None:
    c = crm.compare_programmes(
        orders_rows(),
        list(PROGRAMS.items()),
        refunds=refunds(),
        redemptions=[dict(r, at=ts(r["at"])) for r in FIXTURE["redemptions"]],
        until=UNTIL,
    )
    assert c.labels == ["default", "double_points_tiers"]
    got = {p["label"]: p for p in c.to_dict()["programmes"]}
    for label, expected in FIXTURE["expected"].items():
        for key, value in expected.items():
            assert got[label][key] == value, (label, key)


def test_frames_and_html() -> None:
    pd = pytest.importorskip("pandas")
    c = crm.compare_programmes(orders_rows(), PROGRAMS, refunds=refunds(), until=UNTIL)
    df = c.programmes
    assert isinstance(df, pd.DataFrame)
    assert list(df["label"]) == ["default", "double_points_tiers"]
    assert isinstance(df.loc[0, "liability_value"], Decimal)
    assert df.loc[1, "points_issued"] > df.loc[0, "points_issued"]
    html = c._repr_html_()
    assert html.startswith("<table") and "<th>double_points_tiers</th>" in html and "points_issued" in html
    assert c.frame(backend="dict")["label"] == ["default", "double_points_tiers"]
    # A pandas frame of orders works as the list does.
    frame = pd.DataFrame(orders_rows())
    same = crm.compare_programmes(frame, PROGRAMS, refunds=refunds(), until=UNTIL)
    assert same.to_dict() == c.to_dict()


def test_bad_input_names_the_field() -> None:
    with pytest.raises(crm.ValidationError) as err:
        crm.compare_programmes(orders_rows(), {"default": "not a programme"})
    assert err.value.field == "programs.default"
    with pytest.raises(crm.ValidationError) as err:
        crm.compare_programmes(orders_rows(), {})
    assert err.value.field == "programs"
    with pytest.raises(crm.ValidationError) as err:
        crm.compare_programmes([{"order_id": "x", "member_id": "m", "amount": float("nan"), "placed_at": UNTIL}], PROGRAMS)
    assert err.value.field == "order.amount"
    # An order the engine refuses is counted, as a replay would (not an error).
    c = crm.compare_programmes([{"order_id": "x", "member_id": "m", "amount": "-1", "placed_at": UNTIL}], PROGRAMS)
    assert c.to_dict()["programmes"][0]["orders_rejected"] == 1
    with pytest.raises(crm.ValidationError) as err:
        crm.compare_programmes(orders_rows(), PROGRAMS, refunds=[{"id": "r"}])
    assert err.value.field is not None and err.value.field.startswith("refunds[0]")
