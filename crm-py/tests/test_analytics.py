"""Analytics (RFM, summaries, BG/NBD, Gamma-Gamma, CLV) and segment rules from Python."""

from __future__ import annotations

import json
import math
import pickle
from bisect import bisect_left, bisect_right
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import crm

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
UTC = timezone.utc

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}")


def at(day: str, hour: int = 12) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


# ----- RFM on a hand-computed frame ---------------------------------------------------------

# as_of 2024-03-31. m5's order on 2024-04-02 and m6's only order are after as_of.
ORDERS = [
    ("m1", "2024-03-31", Decimal("10.00")),
    ("m1", "2024-03-01", "20.00"),
    ("m2", "2024-03-21", 5),
    ("m3", "2024-03-21", 15),
    ("m3", "2024-02-01", 15.0),
    ("m3", "2024-01-01", "0.50"),
    ("m4", "2024-01-01", Decimal("30")),
    ("m5", "2023-12-31", 1.0),
    ("m5", "2024-04-02", "100.00"),
    ("m6", "2024-04-01", "7.00"),
]

# recency [0, 10, 10, 90, 91] -> r = 1 + #larger; frequency [2, 1, 3, 1, 1] and
# monetary [30.00, 5.00, 30.50, 30.00, 1.00] -> 1 + #smaller (ties share a score).
EXPECTED = [
    # member, recency, frequency, monetary, r, f, m, group
    ("m1", 0, 2, Decimal("30.00"), 5, 4, 3, "champions"),
    ("m2", 10, 1, Decimal("5.00"), 3, 1, 2, "about_to_sleep"),
    ("m3", 10, 3, Decimal("30.50"), 3, 5, 5, "loyal"),
    ("m4", 90, 1, Decimal("30.00"), 2, 1, 3, "hibernating"),
    ("m5", 91, 1, Decimal("1.00"), 1, 1, 1, "lost"),
]
RFM_COLUMNS = ["member_id", "recency", "frequency", "monetary", "r_score", "f_score", "m_score", "group"]


def orders_pandas() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": [o[0] for o in ORDERS],
            "placed_at": pd.to_datetime([o[1] + " 12:00" for o in ORDERS]).tz_localize("UTC"),
            "amount": [o[2] for o in ORDERS],
        }
    )


def orders_polars() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "member_id": [o[0] for o in ORDERS],
            "placed_at": [at(o[1]) for o in ORDERS],
            "amount": [Decimal(str(o[2])) for o in ORDERS],
        }
    )


def rows(frame: Any) -> List[tuple]:
    if isinstance(frame, pd.DataFrame):
        return list(frame.itertuples(index=False, name=None))
    return list(frame.iter_rows())


def test_rfm_pandas_hand_computed_with_ties():
    out = crm.rfm(orders_pandas(), date(2024, 3, 31))
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == RFM_COLUMNS
    assert rows(out) == EXPECTED
    assert all(isinstance(m, Decimal) for m in out["monetary"])


def test_rfm_polars_hand_computed_with_ties():
    out = crm.rfm(orders_polars(), "2024-03-31")
    assert isinstance(out, pl.DataFrame)
    assert out.columns == RFM_COLUMNS
    assert rows(out) == EXPECTED


def test_rfm_dict_and_arrow_inputs_give_their_own_kind():
    d: Dict[str, List[Any]] = {
        "member_id": [o[0] for o in ORDERS],
        "placed_at": [o[1] for o in ORDERS],  # bare dates: midnight UTC
        "amount": [str(o[2]) for o in ORDERS],
    }
    out = crm.rfm(d, "2024-03-31")
    assert isinstance(out, dict)
    assert list(zip(*(out[c] for c in RFM_COLUMNS))) == EXPECTED
    table = pa.table({**d, "placed_at": [f"{o[1]}T12:00:00Z" for o in ORDERS]})
    out = crm.rfm(table, "2024-03-31")
    assert isinstance(out, pa.Table)
    assert out.column("group").to_pylist() == [e[7] for e in EXPECTED]


def test_rfm_as_of_instant_status_and_renamed_columns():
    df = orders_pandas().rename(columns={"member_id": "customer", "placed_at": "ts", "amount": "total"})
    df["state"] = ["paid"] * len(df)
    df.loc[1, "state"] = "cancelled"  # m1's 2024-03-01 order no longer counts
    out = crm.rfm(
        df,
        datetime(2024, 3, 31, 11, tzinfo=UTC),  # m1's 2024-03-31 12:00 order is after as_of
        member_id="customer",
        placed_at="ts",
        amount="total",
        status="state",
    )
    assert "m1" not in list(out["member_id"])
    assert list(out["member_id"]) == ["m2", "m3", "m4", "m5"]


def test_rfm_integer_ids_sort_numerically_and_stay_ints():
    df = pd.DataFrame(
        {
            "member_id": [10, 9, 100, 9],
            "placed_at": pd.to_datetime(["2024-01-01"] * 4).tz_localize("UTC"),
            "amount": [1, 2, 3, 4],
        }
    )
    out = crm.rfm(df, "2024-01-02")
    assert list(out["member_id"]) == [9, 10, 100]
    assert list(out["frequency"]) == [2, 1, 1]
    assert list(out["monetary"]) == [Decimal("6.00"), Decimal("1.00"), Decimal("3.00")]


def test_rfm_clusters_are_reproducible():
    a = crm.rfm(orders_pandas(), "2024-03-31", clusters=2, seed=7)
    b = crm.rfm(orders_polars(), "2024-03-31", clusters=2, seed=7)
    assert list(a.columns) == RFM_COLUMNS + ["cluster"]
    assert list(a["cluster"]) == b["cluster"].to_list()
    assert set(a["cluster"]) == {0, 1}


def test_rfm_rejects_inexact_floats_naming_the_cell():
    df = orders_pandas()
    df["amount"] = [10.0, 20.0, 5.0, 15.0, 15.0, 0.5, 30.0, 1.0, 100.0, 19.999]
    df.loc[3, "amount"] = 0.1 + 0.2
    with pytest.raises(crm.ValidationError) as e:
        crm.rfm(df, "2024-04-30")
    assert e.value.field == "amount[3]"
    assert "not exact" in str(e.value)
    # More decimals than the scale is an error too, never rounded; a larger scale accepts them.
    d = {"member_id": ["a"], "placed_at": ["2024-01-01"], "amount": ["1.005"]}
    with pytest.raises(crm.ValidationError) as e:
        crm.rfm(d, "2024-01-01")
    assert e.value.field == "amount[0]"
    assert crm.rfm(d, "2024-01-01", scale=3)["monetary"] == [Decimal("1.005")]


def test_rfm_rejects_naive_timestamps_and_bad_ids():
    df = orders_pandas()
    df["placed_at"] = df["placed_at"].dt.tz_localize(None)
    with pytest.raises(crm.ValidationError) as e:
        crm.rfm(df, "2024-03-31")
    assert e.value.field == "placed_at"
    with pytest.raises(crm.ValidationError) as e:
        crm.rfm({"member_id": [1.5], "placed_at": ["2024-01-01"], "amount": [1]}, "2024-01-01")
    assert e.value.field == "member_id[0]"
    with pytest.raises(crm.ValidationError) as e:
        crm.rfm(orders_pandas().drop(columns=["amount"]), "2024-03-31")
    assert e.value.field == "amount"


# ----- RFM on the CDNOW sample ---------------------------------------------------------------


def cdnow_sample_orders() -> pd.DataFrame:
    df = pd.read_csv(
        DATA / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["member_id", "sample_id", "date", "cds", "amount"],
        dtype=str,
    )
    df["placed_at"] = (pd.to_datetime(df["date"], format="%Y%m%d") + pd.Timedelta(hours=12)).dt.tz_localize("UTC")
    return df


def rank_scores(values: List[Any], descending: bool) -> List[int]:
    s = sorted(values)
    n = len(values)
    if descending:
        return [1 + 5 * (n - bisect_right(s, v)) // n for v in values]
    return [1 + 5 * bisect_left(s, v) // n for v in values]


# Rows of `cargo run --release --example rfm -- --orders cdnow_sample.csv --as-of 1998-06-30`
# (cdnow_sample.csv from scripts/cdnow_to_csv.py): member_id,recency,frequency,monetary,r,f,m.
EXAMPLE_ROWS = [
    ("00004", 200, 4, Decimal("100.50"), 4, 4, 4),
    ("00018", 542, 1, Decimal("14.96"), 1, 1, 1),
    ("00021", 533, 2, Decimal("75.11"), 1, 3, 4),
    ("10061", 26, 12, Decimal("332.53"), 5, 5, 5),
    ("14891", 492, 1, Decimal("21.54"), 2, 1, 2),
    ("23569", 462, 1, Decimal("25.74"), 3, 1, 2),
]
# Its summary line: members per RFM group.
EXAMPLE_GROUPS = {
    "about_to_sleep": 345, "at_risk": 90, "cannot_lose": 3, "champions": 414, "hibernating": 541,
    "lost": 319, "loyal": 315, "need_attention": 84, "potential_loyalists": 246,
}  # fmt: skip


@needs_data
def test_rfm_on_cdnow_sample_matches_pandas_and_the_rust_example():
    orders = cdnow_sample_orders()
    out = crm.rfm(orders, "1998-06-30")
    # Independent computation with pandas.
    as_of = pd.Timestamp("1998-06-30", tz="UTC")
    g = orders.assign(amount=orders["amount"].map(Decimal)).groupby("member_id")
    last = g["placed_at"].max()
    expected = pd.DataFrame(
        {
            "recency": (as_of.normalize() - last.dt.normalize()).dt.days,
            "frequency": g.size(),
            "monetary": g["amount"].agg(lambda s: sum(s, Decimal("0.00"))),
        }
    ).sort_index()
    expected["r_score"] = rank_scores(list(expected["recency"]), descending=True)
    expected["f_score"] = rank_scores(list(expected["frequency"]), descending=False)
    expected["m_score"] = rank_scores(list(expected["monetary"]), descending=False)
    assert len(out) == len(expected) == 2357
    assert list(out["member_id"]) == list(expected.index)
    for col in ["recency", "frequency", "monetary", "r_score", "f_score", "m_score"]:
        assert list(out[col]) == list(expected[col]), col
    by_id = out.set_index("member_id")
    for member, *values in EXAMPLE_ROWS:
        row = by_id.loc[member]
        assert [row[c] for c in RFM_COLUMNS[1:7]] == values, member
    assert out["group"].value_counts().to_dict() == EXAMPLE_GROUPS


# ----- summaries and the value models ------------------------------------------------------

BGNBD_PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
GG_PUBLISHED = {"p": 6.25, "q": 3.74, "gamma": 15.44}


def close(actual: float, expected: float, rel: float = 0.005) -> bool:
    return abs(actual - expected) <= rel * abs(expected)


@needs_data
def test_fit_bgnbd_on_the_cdnow_summary():
    df = pd.read_csv(DATA / "cdnow_customers_summary.csv")
    bg = crm.fit_bgnbd(df, period="week")
    for name, value in BGNBD_PUBLISHED.items():
        assert close(getattr(bg, name), value), (name, getattr(bg, name))
    assert bg.period == "week" and bg.converged and bg.customers == 2357
    assert bg.log_likelihood is not None and bg.log_likelihood < 0
    # Polars gives the same fit.
    bg2 = crm.fit_bgnbd(pl.read_csv(DATA / "cdnow_customers_summary.csv"), period="week")
    assert math.isclose(bg2.r, bg.r, rel_tol=1e-12)
    # Vectorised over the frame, aligned with its index; scalars give floats.
    p = bg.p_alive(df)
    assert isinstance(p, pd.Series) and p.name == "p_alive" and list(p.index) == list(df.index)
    assert p[df["frequency"] == 0].eq(1.0).all()
    assert p[0] == pytest.approx(bg.p_alive(df["frequency"][0], df["recency"][0], df["T"][0]))
    assert isinstance(bg.p_alive(2, 30.43, 38.86), float)
    e = bg.expected_purchases(39, df["frequency"], df["recency"], df["T"])
    assert isinstance(e, pd.Series) and len(e) == len(df) and (e >= 0).all()
    assert bg.expected_purchases(10.0) == pytest.approx(bg.expected_purchases(10.0, 0, 0.0, 0.0))
    with pytest.raises(crm.ValidationError) as err:
        bg.p_alive(2, 40.0, 38.86)
    assert err.value.field == "recency"
    # alive_until inverts p_alive; no repeat purchase: never falls.
    T = bg.alive_until(2, 10.0, 0.3)
    assert T > 10.0 and bg.p_alive(2, 10.0, T) == pytest.approx(0.3, abs=1e-9)
    assert bg.alive_until(0, 0.0, 0.3) is None
    with pytest.raises(crm.ValidationError) as err:
        bg.alive_until(2, 10.0, 1.0)
    assert err.value.field == "p"


@needs_data
def test_fit_gamma_gamma_and_clv_on_the_cdnow_summary():
    df = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")  # ID,x,t_x,T,zbar
    gg = crm.fit_gamma_gamma(df)
    for name, value in GG_PUBLISHED.items():
        assert close(getattr(gg, name), value), (name, getattr(gg, name))
    assert gg.customers == int((df["x"] > 0).sum())
    v = gg.expected_average_value(df)
    assert isinstance(v, pd.Series) and len(v) == len(df)
    assert v[0] == pytest.approx(gg.expected_average_value(2, 22.35))
    bg = crm.fit_bgnbd(df, period="week")
    values = crm.clv(bg, gg, df, months=12, discount_rate=0.01, margin=0.3)
    assert isinstance(values, pd.Series) and values.name == "clv" and len(values) == len(df)
    # Row 0 by the formula: margin * E[value] * sum of discounted monthly expected purchases.
    x, t_x, t, z = df.loc[0, ["x", "t_x", "T", "zbar"]]
    f = 365.25 / 12 / 7
    months = [bg.expected_purchases(i * f, x, t_x, t) for i in range(13)]
    flows = sum((months[i] - months[i - 1]) / 1.01**i for i in range(1, 13))
    assert values[0] == pytest.approx(0.3 * gg.expected_average_value(x, z) * flows, rel=1e-9)
    # Polars in, polars Series out.
    out = crm.clv(bg, gg, pl.from_pandas(df))
    assert isinstance(out, pl.Series) and out.name == "clv"


@needs_data
def test_summary_from_orders_reproduces_the_published_summary_and_fit():
    orders = cdnow_sample_orders()
    orders["sample_id"] = orders["sample_id"].astype(int)
    s = crm.summary(orders, "1997-09-30", "week", member_id="sample_id")
    assert list(s.columns) == ["member_id", "frequency", "recency", "T", "monetary_value"]
    published = pd.read_csv(DATA / "cdnow_customers_summary_with_transactions.csv")
    assert list(s["member_id"]) == list(published["ID"])
    assert list(s["frequency"]) == list(published["x"])
    assert (s["recency"] - published["t_x"]).abs().max() < 0.006
    assert (s["T"] - published["T"]).abs().max() < 0.006
    assert (s["monetary_value"] - published["zbar"]).abs().max() < 0.006
    # Straight from orders: the same fits.
    bg = crm.fit_bgnbd(orders, period="week", calibration_end="1997-09-30", member_id="sample_id")
    for name, value in BGNBD_PUBLISHED.items():
        assert close(getattr(bg, name), value), (name, getattr(bg, name))
    gg = crm.fit_gamma_gamma(orders, calibration_end="1997-09-30", member_id="sample_id")
    for name, value in GG_PUBLISHED.items():
        assert close(getattr(gg, name), value, rel=0.01), (name, getattr(gg, name))


def test_models_from_parameters_and_bad_inputs():
    bg = crm.BgNbd(0.243, 4.414, 0.793, 2.426, period="week")
    assert bg.log_likelihood is None and bg.to_dict()["period"] == "week"
    assert bg.p_alive(0, 0, 30) == 1.0
    assert bg.p_alive(5, 5, 38) < bg.p_alive(5, 37, 38)
    assert repr(bg).startswith("BgNbd(r=0.243")
    with pytest.raises(crm.ValidationError):
        crm.BgNbd(-1, 1, 1, 1)
    with pytest.raises(crm.ValidationError):
        crm.BgNbd(1, 1, 1, 1, period="month")  # type: ignore[arg-type]
    gg = crm.GammaGamma(6.25, 3.74, 15.44)
    assert gg.expected_average_value(0, 0) == pytest.approx(6.25 * 15.44 / 2.74)
    assert gg.expected_average_value([1, 2], [10, 20]) == pytest.approx(
        [gg.expected_average_value(1, 10), gg.expected_average_value(2, 20)]
    )
    with pytest.raises(crm.ValidationError) as e:
        crm.fit_bgnbd(pd.DataFrame({"frequency": [1], "T": [2.0]}))
    assert e.value.field == "recency"
    with pytest.raises(crm.ValidationError) as e:
        crm.fit_bgnbd({"frequency": [1, 1.5], "recency": [1, 1], "T": [2, 2]})
    assert e.value.field == "frequency[1]"
    with pytest.raises(crm.ValidationError):
        crm.clv(gg, gg, {"frequency": [1], "recency": [1], "T": [2], "monetary_value": [3]})  # type: ignore[arg-type]


# ----- segment rules ----------------------------------------------------------------------------

TEXT = 'tier in ("gold", "platinum") and orders(90d) >= 2 and not tag("vip_manual")'
CANONICAL = 'tier in ("gold", "platinum") and orders(90d) >= 2 and not tags contains "vip_manual"'


def test_rule_parse_canonical_text_and_json_round_trip():
    rule = crm.Rule(TEXT)
    assert str(rule) == CANONICAL
    assert rule.fields == ["tier", "orders(90d)", "tags"]
    j = rule.to_json()
    assert j["and"][1] == {"field": "orders", "window": "90d", "op": ">=", "value": 2}
    assert crm.Rule.from_json(j) == rule
    assert crm.Rule.from_json(json.dumps(j)) == rule
    assert str(crm.Rule.from_json(crm.Rule(str(rule)).to_json())) == CANONICAL
    assert crm.Rule(CANONICAL) == rule and hash(crm.Rule(CANONICAL)) == hash(rule)
    assert pickle.loads(pickle.dumps(rule)) == rule
    assert repr(rule) == f"Rule({CANONICAL!r})"
    money = crm.Rule.from_json({"field": "spend", "window": "365d", "op": ">=", "value": "500.00"})
    assert str(money) == "spend(365d) >= 500.00"


def test_rule_parse_error_has_line_column_and_caret():
    with pytest.raises(crm.RuleError) as e:
        crm.Rule('tier == "gold" and\n  orders(90d) >= >= 2')
    err = e.value
    assert isinstance(err, crm.CrmError) and err.code == "rule_error"
    assert (err.line, err.column) == (2, 18)
    assert err.excerpt == "  orders(90d) >= >= 2\n                 ^"
    assert err.excerpt in str(err) and "line 2, column 18" in str(err)
    assert err.message and err.message in str(err)


def test_rule_type_error_names_the_field():
    with pytest.raises(crm.RuleError) as e:
        crm.Rule('spend(365d) >= "abc"')
    assert (e.value.field, e.value.line) == ("spend(365d)", 1)
    assert e.value.message == 'field `spend(365d)` is money, got text "abc"'
    assert 'spend(365d) >= "abc"\n' in str(e.value) and str(e.value).endswith("^")
    with pytest.raises(crm.RuleError) as e:
        crm.Rule.from_json({"and": [{"field": "tier", "op": "==", "value": "gold"}, {"field": "orders", "window": "90d", "op": ">=", "value": "x"}]})
    assert (e.value.line, e.value.field) == (0, "orders(90d)")
    assert e.value.excerpt.startswith("and[1]")
    with pytest.raises(crm.RuleError):
        crm.Rule.from_json("{not json")
    with pytest.raises(crm.ValidationError):
        crm.Rule.from_json(42)  # type: ignore[arg-type]


MEMBERS = {
    "tier": ["gold", "silver", "platinum", None, "gold"],
    "orders(90d)": [3, 9, 2, 5, 1],
    "spend(365d)": [Decimal("800.00"), "120.50", 500, None, 99.5],
    "days_since_last_order": [5, 40, None, 1, 2],
    "tags": [[], ["vip_manual"], None, ["x"], ["new"]],
}


def test_rule_evaluate_on_pandas_polars_and_dict():
    rule = crm.Rule(TEXT)
    df = pd.DataFrame(MEMBERS, index=[10, 11, 12, 13, 14])
    mask = rule.evaluate(df)
    assert isinstance(mask, pd.Series) and mask.dtype == bool
    assert list(mask.index) == [10, 11, 12, 13, 14]
    assert list(mask) == [True, False, True, False, False]
    assert list(df[mask]["tier"]) == ["gold", "platinum"]

    money = crm.Rule("spend(365d) >= 500 or days_since_last_order <= 2")
    assert list(money.evaluate(df)) == [True, False, True, True, True]
    # Missing values make comparisons false; `not` is the plain complement.
    assert list(crm.Rule("days_since_last_order > 3").evaluate(df)) == [True, True, False, False, False]
    assert list(crm.Rule("not days_since_last_order <= 3").evaluate(df)) == [True, True, True, False, False]

    polars = pl.DataFrame(
        {
            "tier": MEMBERS["tier"],
            "orders(90d)": MEMBERS["orders(90d)"],
            "tags": [t or [] for t in MEMBERS["tags"]],
        }
    )
    pmask = rule.evaluate(polars)
    assert isinstance(pmask, pl.Series) and pmask.to_list() == [True, False, True, False, False]
    assert rule.evaluate(MEMBERS) == [True, False, True, False, False]


def test_rule_evaluate_columns_tier_ladder_and_errors():
    df = pd.DataFrame({"level": ["bronze", "gold", "platinum"], "n": [1, 2, 3], "Orders(90D)": [1, 2, 3]})
    rule = crm.Rule('tier >= "gold" and orders(90d) >= 2')
    ladder = ["bronze", "silver", "gold", "platinum"]
    # Spelling variants of a field name are found; `columns` maps fields to other names.
    assert list(rule.evaluate(df, columns={"tier": "level"}, tier_ladder=ladder)) == [False, True, True]
    assert list(rule.evaluate(df, columns={"tier": "level"})) == [False, False, False]  # no ladder: no order
    with pytest.raises(crm.ValidationError) as e:
        rule.evaluate(df)
    assert e.value.field == "tier"
    bad = pd.DataFrame({"spend(365d)": [10.0, 0.1 + 0.2]})
    with pytest.raises(crm.ValidationError) as e:
        crm.Rule("spend(365d) > 1").evaluate(bad)
    assert e.value.field == "spend(365d)[1]"
    with pytest.raises(crm.ValidationError) as e:
        crm.Rule("orders(90d) > 1").evaluate({"orders(90d)": ["many"]})
    assert e.value.field == "orders(90d)[0]"


def test_rule_matches_one_member():
    rule = crm.Rule(TEXT)
    assert rule.matches({"tier": "gold", "orders(90d)": 3, "tags": {"x"}, "member_id": "ignored"})
    assert not rule.matches({"tier": "gold", "orders(90d)": 3, "tags": ["vip_manual"]})
    assert not rule.matches({"tier": "gold"})  # orders(90d) missing
    dated = crm.Rule('birthday between "1990-01-01" and "1999-12-31" and attr.vip == true')
    assert dated.matches({"birthday": date(1995, 5, 5), "attr.vip": True})
    assert dated.matches({"birthday": "1995-05-05", 'attributes["vip"]': True})
    assert not dated.matches({"birthday": date(1985, 5, 5), "attr.vip": True})
    with pytest.raises(crm.ValidationError) as e:
        dated.matches({"birthday": datetime(1995, 5, 5, tzinfo=UTC)})
    assert e.value.field == "birthday"
    assert crm.Rule('tier >= "gold"').matches({"tier": "platinum"}, tier_ladder=["silver", "gold", "platinum"])


def test_rfm_as_of_aware_datetime_and_rfc3339_string():
    assert rows(crm.rfm(orders_pandas(), datetime(2024, 3, 31, 23, 59, tzinfo=UTC))) == EXPECTED
    assert rows(crm.rfm(orders_pandas(), "2024-04-01T07:59:00+08:00")) == EXPECTED
