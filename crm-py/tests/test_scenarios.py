"""Every shared scenario, on the in-memory engine and on a SQLite file engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import crm
from scenario_runner import COMMANDS, QUERIES, REPO, SCENARIO_DIR, matches, run_scenario, scenario_files

FILES = scenario_files()


def test_scenarios_exist():
    assert FILES, f"no scenarios in {SCENARIO_DIR}"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_in_memory(path: Path):
    assert run_scenario(path, lambda program: crm.Engine(program), program_from="dict") > 0


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_sqlite_file(path: Path, tmp_path: Path):
    db = tmp_path / "scenario.db"
    assert run_scenario(path, lambda program: crm.Engine(program, db), program_from="json") > 0
    assert db.exists()


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_runner_maps_every_core_command():
    """The runner has a native mapping for every variant of crm_core::Command."""
    src = (REPO / "crm-core" / "src" / "command.rs").read_text(encoding="utf-8")
    body = src[src.index("pub enum Command {") :]
    body = body[: body.index("\n}\n")]
    variants = {_snake(m) for m in re.findall(r"^    ([A-Z][A-Za-z]+)\b", body, flags=re.M)}
    assert variants, "could not read crm_core::Command"
    assert variants == set(COMMANDS), f"missing: {variants - set(COMMANDS)}, extra: {set(COMMANDS) - variants}"


def test_runner_knows_every_documented_query():
    readme = (SCENARIO_DIR / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if "query step" in ln.lower())
    section = readme[readme.index(line) :].split("\n- ", 2)[0]
    documented = set(re.findall(r"`([a-z_]+)` \(", section)) | set(re.findall(r"`(liability)`", section))
    assert documented <= set(QUERIES), documented - set(QUERIES)


def test_matcher_semantics():
    matches({"a": "12.5"}, {"a": "12.50", "b": 1})
    matches([{"x": 1}], [{"x": 1, "y": 2}])
    with pytest.raises(AssertionError):
        matches([1], [1, 2])
    with pytest.raises(AssertionError):
        matches({"a": "x"}, {"a": "y"})
    with pytest.raises(AssertionError):
        matches({"a": True}, {"a": 1})
    with pytest.raises(AssertionError):
        matches({"missing": 0}, {})
