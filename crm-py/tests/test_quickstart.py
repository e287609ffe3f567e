"""examples/python/quickstart.py runs as a script from another folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "python" / "quickstart.py"


def test_quickstart_runs_as_a_subprocess(tmp_path: Path):
    db = tmp_path / "cdnow.db"
    out = subprocess.run(
        [sys.executable, str(QUICKSTART), "--db", str(db), "--months", "4"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["orders"] > 0 and summary["rejected"] == 0
    assert summary["members"] == 2357  # every customer's first purchase is in Q1 1997
    assert summary["points_issued"] > summary["points_redeemed"] > 0
    assert summary["points_outstanding"] == summary["points_issued"] - summary["points_redeemed"] - summary[
        "points_expired"
    ]
    assert len(summary["top_members"]) == 5
    assert "top members by spend:" in out.stdout
    assert db.exists()
