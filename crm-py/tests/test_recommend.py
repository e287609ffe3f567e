"""crm.Recommender and crm.recommend: the shared fixture, frames, edge cases and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import polars as pl
import pytest

import crm

FIXTURE = Path(__file__).resolve().parents[2] / "scenarios" / "recommend" / "basic.json"


def fixture():
    v = json.loads(FIXTURE.read_text(encoding="utf-8"))
    lines = pd.DataFrame(v["purchases"])
    engagements = pd.DataFrame(v["engagements"])
    return v, lines, engagements


def test_shared_fixture_matches_rust_and_node():
    v, lines, engagements = fixture()
    for case in v["cases"]:
        model = crm.Recommender(
            lines,
            engagements,
            neighbours=case["neighbours"],
            exclude_bought=case["exclude_bought"],
            one_per_category=case["one_per_category"],
        )
        for member, expected in case["expected"].items():
            got = [[sku, round(score, 4)] for sku, score in model.recommend(member, case["k"])]
            assert got == expected, (case["name"], member)


def test_recommend_all_is_a_frame_of_the_input_kind():
    v, lines, engagements = fixture()
    frame = crm.recommend(lines, engagements, k=2)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["member_id", "rank", "sku", "score"]
    assert frame["member_id"].tolist()[:2] == ["ann", "ann"]
    assert frame["rank"].tolist()[:2] == [1, 2]
    expected = v["cases"][0]["expected"]
    for member, rows in frame.groupby("member_id"):
        assert rows["sku"].tolist() == [sku for sku, _ in expected[member][:2]]
    pframe = crm.Recommender(pl.from_pandas(lines), pl.from_pandas(engagements)).recommend_all(1)
    assert isinstance(pframe, pl.DataFrame)
    assert pframe.height == 6


def test_new_member_everything_bought_and_k_zero():
    lines = {"member_id": ["a", "a", "b", "b", "c"], "sku": ["x", "y", "x", "y", "z"]}
    model = crm.Recommender(lines)
    # New member: popularity (x and y have two members, z one).
    assert [s for s, _ in model.recommend("newcomer", 3)] == ["x", "y", "z"]
    assert all(score == 0.0 for _, score in model.recommend("newcomer", 3))
    # a bought x and y; z never co-occurs, so it fills from popularity.
    assert model.recommend("a", 3) == [("z", 0.0)]
    # Bought everything there is: nothing.
    assert crm.Recommender({"member_id": ["a", "a"], "sku": ["x", "y"]}).recommend("a", 5) == []
    assert model.recommend("a", 0) == []
    assert model.similar("x", 5) == [("y", pytest.approx(1.0))]
    # Integer ids are accepted and come back as text.
    # cos(10, 11) = 1 / sqrt(2), squared (power 2) = 0.5.
    model = crm.Recommender({"member_id": [1, 1, 2], "sku": [10, 11, 10]})
    assert model.recommend(2, 1) == [("11", pytest.approx(0.5))]


def test_errors_name_the_cell_or_option():
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a", "b"], "sku": ["x", "y"], "qty": [1, 0]})
    assert e.value.field == "qty[1]"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"], "sku": [""]})
    assert e.value.field == "sku[0]"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"]})
    assert e.value.field == "sku"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"], "sku": ["x"]}, {"member_id": ["a"], "sku": ["x"], "kind": ["stare"]})
    assert e.value.field == "kind[0]"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"], "sku": ["x"]}, neighbours=0)
    assert e.value.field == "neighbours"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"], "sku": ["x"]}, purchase_weight="weird")
    assert e.value.field == "purchase_weight"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"], "sku": ["x"]}, engagement_weights={"browse": -1})
    assert e.value.field == "engagement_weights.browse"
    with pytest.raises(crm.ValidationError) as e:
        crm.Recommender({"member_id": ["a"], "sku": ["x"]}).recommend("a", -1)
    assert e.value.field == "k"
