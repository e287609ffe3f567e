"""Bulk import from DataFrames (pandas, polars, pyarrow / Arrow C stream, dict) and frames back."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import crm

NOW = datetime(2024, 6, 1, tzinfo=timezone.utc)


def engine() -> crm.Engine:
    return crm.Engine(crm.Program.default_demo())


def sample_pandas() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": ["a", "b", "a", "c", "d"],
            "order_id": ["o1", "o2", "o3", "o4", "o5"],
            "placed_at": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-02 11:00", "2024-02-01 12:00", "2024-03-01 00:00", "2024-03-02 00:00"]
            ).tz_localize("Asia/Shanghai"),
            "amount": [10.5, 20.0, float("nan"), -3.0, 19.999],
            "channel": ["web", None, "app", "web", "pos"],
            "extra": [1, 2, 3, 4, 5],
        }
    )


def test_pandas_import_with_rejected_rows():
    e = engine()
    res = e.import_orders(sample_pandas(), now=NOW)
    assert (res.rows, res.recorded, len(res)) == (5, 3, 5)
    assert res.members == 3
    assert res.earned == {"reward": 10 + 20 + 20}
    rej = res.rejected
    assert [r.row for r in rej] == [2, 3]
    assert rej[0].order_id == "o3" and rej[0].code == "validation_error" and rej[0].field == "order.amount"
    assert "finite" in rej[0].message
    assert rej[1].field == "order.amount" and "negative" in rej[1].message
    # the float rule: 19.999 -> 20.00 (USD), as for single calls
    assert e.member("d").spend == Decimal("20.00")
    # times converted from the frame's zone to UTC
    lot = e.lots("a")[0]
    assert lot.earned_at == datetime(2024, 1, 1, 2, tzinfo=timezone.utc)
    assert "RejectedRow(row=2" in repr(rej[0])
    assert "ImportResult(rows=5, recorded=3, rejected=2" in repr(res)
    d = res.to_dict()
    assert d["rejected"][0]["row"] == 2 and d["recorded"] == 3


def test_import_is_idempotent_and_detects_conflicts():
    e = engine()
    df = sample_pandas()
    first = e.import_orders(df, now=NOW)
    again = e.import_orders(df, now=NOW)
    assert again.recorded == first.recorded
    assert e.balance("a", "reward", at=NOW).available == 10
    changed = df.copy()
    changed.loc[0, "amount"] = 99.0
    res = e.import_orders(changed.iloc[[0]], now=NOW)
    assert res.rejected[0].code == "conflict"


def test_result_frame_per_row():
    e = engine()
    res = e.import_orders(sample_pandas(), now=NOW)
    f = res.to_frame()
    assert isinstance(f, pd.DataFrame)
    assert list(f.columns) == ["row", "order_id", "member_id", "status", "earned_reward", "code", "field", "message"]
    assert f["status"].tolist() == ["recorded", "recorded", "rejected", "rejected", "recorded"]
    assert f["earned_reward"].tolist() == [10, 20, 0, 0, 20]
    pf = res.to_frame("polars")
    assert isinstance(pf, pl.DataFrame) and pf.height == 5
    assert isinstance(res.to_frame("pyarrow"), pa.Table)
    assert res.to_frame("dict")["code"][2] == "validation_error"
    with pytest.raises(crm.ValidationError) as ei:
        res.to_frame("excel")
    assert ei.value.field == "backend"


def test_polars_import_and_decimal_and_string_columns():
    e = engine()
    df = pl.DataFrame(
        {
            "member_id": ["a", "b", "c"],
            "order_id": ["p1", "p2", "p3"],
            "placed_at": [datetime(2024, 1, 1, tzinfo=timezone.utc)] * 3,
            "amount": [Decimal("12.50"), Decimal("7.99"), None],
        }
    )
    res = e.import_orders(df, now=NOW)
    assert res.recorded == 2
    assert res.rejected[0].row == 2 and res.rejected[0].field == "order.amount"
    assert e.member("a").spend == Decimal("12.50")
    strings = pl.DataFrame(
        {
            "customer": ["s"],
            "order_id": ["s1"],
            "placed_at": ["2024-01-01T08:00:00+08:00"],
            "amount": ["5.25"],
        }
    )
    res = e.import_orders(strings, now=NOW, columns={"member_id": "customer"})
    assert res.recorded == 1
    assert e.lots("s")[0].earned_at == datetime(2024, 1, 1, tzinfo=timezone.utc)


def test_arrow_stream_and_dict_inputs():
    e = engine()
    table = pa.table(
        {
            "member_id": ["x", "y"],
            "order_id": ["a1", "a2"],
            "placed_at": pa.array(
                [datetime(2024, 1, 1, tzinfo=timezone.utc), datetime(2024, 1, 2, tzinfo=timezone.utc)],
                type=pa.timestamp("ns", tz="UTC"),
            ),
            "amount": pa.array([Decimal("1.00"), Decimal("2.50")], type=pa.decimal128(10, 2)),
        }
    )
    assert e.import_orders(table, now=NOW).recorded == 2

    class Stream:
        """Only the Arrow PyCapsule stream interface."""

        def __init__(self, t):
            self.t = t

        def __arrow_c_stream__(self, requested_schema=None):
            return self.t.__arrow_c_stream__(requested_schema)

    t2 = table.set_column(1, "order_id", pa.array(["a3", "a4"]))
    assert e.import_orders(Stream(t2), now=NOW).recorded == 2
    res = e.import_orders(
        {"member_id": ["z"], "order_id": ["d1"], "placed_at": [NOW], "amount": [3]}, now=NOW, batch_size=1
    )
    assert res.recorded == 1
    assert e.balance("x", "reward", at=NOW).available == 2


@pytest.mark.parametrize("kind", ["pandas", "polars", "arrow"])
def test_naive_timestamp_columns_raise(kind):
    naive = [datetime(2024, 1, 1)]
    data = {"member_id": ["a"], "order_id": ["o"], "placed_at": naive, "amount": [1]}
    frame = {"pandas": pd.DataFrame, "polars": pl.DataFrame, "arrow": pa.table}[kind](data)
    e = engine()
    with pytest.raises(crm.ValidationError) as ei:
        e.import_orders(frame, now=NOW)
    assert ei.value.code == "validation_error" and ei.value.field == "placed_at"
    assert e.liability(at=NOW).members == 0


def test_naive_values_in_object_columns_reject_the_row():
    e = engine()
    df = pd.DataFrame(
        {"member_id": ["a", "b"], "order_id": ["o1", "o2"], "placed_at": [datetime(2024, 1, 1), NOW], "amount": [1, 2]},
        dtype=object,
    )
    res = e.import_orders(df, now=NOW)
    assert res.recorded == 1 and res.rejected[0].field == "order.placed_at"


def test_bad_frames():
    e = engine()
    with pytest.raises(crm.ValidationError) as ei:
        e.import_orders(pd.DataFrame({"member_id": ["a"]}), now=NOW)
    assert ei.value.field == "order_id"
    with pytest.raises(crm.ValidationError) as ei:
        e.import_orders([1, 2, 3], now=NOW)
    assert ei.value.field == "frame"
    with pytest.raises(crm.ValidationError) as ei:
        e.import_orders(sample_pandas(), now=NOW, columns={"bogus": "x"})
    assert ei.value.field == "columns.bogus"
    with pytest.raises(crm.ValidationError) as ei:
        e.import_orders(sample_pandas(), now=NOW, batch_size=0)
    assert ei.value.field == "batch_size"
    empty = e.import_orders(sample_pandas().iloc[0:0], now=NOW)
    assert empty.rows == 0 and empty.recorded == 0


def test_balances_frame():
    e = engine()
    e.import_orders(sample_pandas(), now=NOW)
    e.redeem("a", 4, point_type="reward", now=NOW, idempotency_key="r1")
    f = e.balances_frame("reward", at=NOW)
    assert isinstance(f, pd.DataFrame)
    assert f["member_id"].tolist() == ["a", "b", "d"]
    assert f["available"].tolist() == [6, 20, 20]
    assert list(f.columns) == ["member_id", "status", "available", "pending", "debt", "total"]
    # as of a past instant
    past = e.balances_frame("reward", at=datetime(2024, 1, 1, 12, tzinfo=timezone.utc), backend="polars")
    assert isinstance(past, pl.DataFrame)
    assert past.get_column("available").to_list() == [10, 0, 0]
    with pytest.raises(crm.ValidationError) as ei:
        e.balances_frame("gold", at=NOW)
    assert ei.value.field == "point_type"


def test_record_orders_list_of_dicts():
    e = engine()
    out = e.record_orders(
        [
            {"id": "l1", "member_id": "m", "amount": "5", "placed_at": NOW},
            {"id": "l2", "member_id": "m", "amount": "-5", "placed_at": NOW},
            "nope",
        ],
        now=NOW,
    )
    assert isinstance(out[0], crm.Outcome) and out[0].earned == {"reward": 5}
    assert isinstance(out[1], crm.ValidationError) and out[1].field == "order.amount"
    assert isinstance(out[2], crm.ValidationError) and out[2].field == "orders[2]"
