"""The visual report through the Python API: the page's data, the HTML in both
languages, the what-if section, writing the file, Jupyter's ``_repr_html_`` and the
errors of bad arguments."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

import crm

UTC = dt.timezone.utc
AT = dt.datetime(2024, 4, 1, tzinfo=UTC)
DEMO = Path(__file__).resolve().parents[2] / "examples" / "programs" / "demo.toml"
CHARTS = ["tiers", "stages", "flows", "liability", "cohorts", "rfm", "rfm_groups", "channel_members", "channel_spend"]


@pytest.fixture
def engine() -> crm.Engine:
    e = crm.Engine(crm.Program.from_file(DEMO))
    t0 = dt.datetime(2023, 1, 5, 10, tzinfo=UTC)
    for m in range(20):
        for k in range(1 + m % 4):
            at = t0 + dt.timedelta(days=(m * 37 + k * 71) % 400)
            e.record_order(
                id=f"o{m}-{k}", member_id=f"m{m:02}", amount=Decimal(10 + m * 7 + k), placed_at=at, now=at,
                channel="web" if (m + k) % 3 else "store",
            )
    return e


def charts(html: str) -> list:
    return re.findall(r'<svg [^>]*data-chart="([a-z_]+)"', html)


def test_report_page_holds_the_figures_and_renders(engine: crm.Engine) -> None:
    page = engine.report_page(at=AT)
    assert isinstance(page, crm.ReportPage)
    assert page.members == 20 and page.at == AT and page.programme == "Default"
    assert isinstance(page.active_share, Decimal)
    d = page.to_dict()
    assert d["report"] == engine.report(at=AT)
    assert d["flows"]["from"] == dt.datetime(2023, 4, 1, tzinfo=UTC) and d["flows"]["to"] == AT
    assert sum(sum(row) for row in d["rfm"]["counts"]) == d["report"]["buyers"]
    html = page.html()
    assert html.startswith("<!DOCTYPE html>") and charts(html) == CHARTS
    assert html == engine.report_html(at=AT)
    assert "会员数" in page.html(lang="zh")
    assert "ReportPage(programme='Default'" in repr(page)


def test_repr_html_is_a_fragment_for_jupyter(engine: crm.Engine) -> None:
    fragment = engine.report_page(at=AT)._repr_html_()
    assert fragment.startswith("<style>") and "<html" not in fragment
    assert charts(fragment) == CHARTS


def test_whatif_section_from_a_dict_or_json_text(engine: crm.Engine, tmp_path: Path) -> None:
    comparison = {
        "until": "2024-04-01T00:00:00Z",
        "history": {"orders": 50, "refunds": 0, "redemptions": 0},
        "programmes": [
            {
                "label": label, "programme": label, "currency": "USD", "orders": 50, "orders_rejected": 0,
                "refunds": 0, "refunds_rejected": 0, "members": 20, "points_issued": issued,
                "issued_by_type": {"reward": issued}, "points_clawed_back": 0, "points_redeemed": 0,
                "redemptions": 0, "redemptions_short": 0, "redemption_shortfall": 0, "points_expired": 10,
                "outstanding": {"reward": issued - 10}, "points_outstanding": issued - 10,
                "liability_value": str(Decimal(issued - 10) / 100), "tier_distribution": None,
                "stage_distribution": {"active": 20}, "tier_changes": 0, "stage_changes": 0, "outreach": {},
                "outreach_suppressed": 0, "coupon_cost": "0", "run_due_runs": 16,
            }
            for label, issued in [("base", 1000), ("double", 2000)]
        ],
        "movers": [],
        "notes": [],
    }
    page = engine.report_page(at=AT)
    assert "whatif" not in charts(page.html())
    with_dict = page.html(whatif=comparison)
    assert charts(with_dict)[-1] == "whatif" and ">double</th>" in with_dict
    stdout = "what-if replay …\n" + json.dumps({**comparison, "elapsed_ms": 3.5}) + "\n"
    assert page.html(whatif=stdout) == with_dict
    out = tmp_path / "report.html"
    engine.write_report(out, at=AT, lang="zh", whatif=comparison)
    text = out.read_text(encoding="utf-8")
    assert 'lang="zh-CN"' in text and "方案模拟对比" in text
    page.write(tmp_path / "page.html")
    assert (tmp_path / "page.html").read_text(encoding="utf-8") == page.html()


def test_bad_arguments_raise_validation_errors(engine: crm.Engine) -> None:
    with pytest.raises(crm.ValidationError) as e:
        engine.report_html(at=AT, lang="fr")
    assert e.value.field == "lang"
    with pytest.raises(crm.ValidationError) as e:
        engine.report_page(at=AT, flows_from=AT, flows_to=AT - dt.timedelta(days=1))
    assert e.value.field == "flows_to"
    with pytest.raises(crm.ValidationError) as e:
        engine.report_page(at=AT).html(whatif={"until": "nope"})
    assert e.value.field is not None and e.value.field.startswith("whatif")
    with pytest.raises(crm.ValidationError) as e:
        engine.report_html(at=dt.datetime(2024, 4, 1))
    assert e.value.field == "at"
