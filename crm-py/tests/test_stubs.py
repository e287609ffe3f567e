"""The shipped type stubs match the compiled module and type-check the examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import crm

CRATE = Path(__file__).resolve().parents[1]
REPO = CRATE.parent


def test_py_typed_and_stubs_ship_with_the_package():
    pkg = Path(crm.__file__).resolve().parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_crm.pyi").exists()


def test_stubtest(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "crm", "--allowlist", str(CRATE / "stubtest-allowlist.txt")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_examples_and_benchmark_type_check(tmp_path: Path):
    files = [REPO / "examples" / "python" / "quickstart.py", REPO / "benches" / "python_bulk_import.py"]
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--ignore-missing-imports", "--no-incremental", *map(str, files)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
