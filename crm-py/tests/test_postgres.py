"""The PostgreSQL store from Python: every shared scenario, persistence and errors.

Tests that need a server run only when ``CRM_TEST_POSTGRES_URL`` is set (e.g.
``postgresql://postgres@127.0.0.1:5432/test``); each uses a fresh schema
``crm_test_py_<pid>_<n>`` and drops it afterwards. The error tests that need
no server always run.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import Callable, Iterator, List

import pytest

import crm
from scenario_runner import run_scenario, scenario_files

PG_URL = os.environ.get("CRM_TEST_POSTGRES_URL", "")
needs_postgres = pytest.mark.skipif(
    not PG_URL,
    reason="CRM_TEST_POSTGRES_URL not set (e.g. postgresql://postgres@127.0.0.1:5432/test); PostgreSQL tests skipped",
)

FILES = scenario_files()
_schemas = itertools.count(1)
NOW = "2024-03-01T10:00:00Z"


def fresh_schema() -> str:
    return f"crm_test_py_{os.getpid()}_{next(_schemas)}"


EngineFactory = Callable[[crm.Program], crm.Engine]


@pytest.fixture
def pg_engine() -> Iterator[EngineFactory]:
    """A factory of PostgreSQL engines, each on a schema of its own; every
    schema it created is dropped when the test ends (pass or fail)."""
    opened: List[crm.Engine] = []

    def factory(program: crm.Program) -> crm.Engine:
        engine = crm.Engine.open_postgres(program, PG_URL, schema=fresh_schema(), pool_size=2)
        opened.append(engine)
        return engine

    yield factory
    for engine in opened:
        engine.drop_store_schema()


@needs_postgres
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_scenario_postgres(path: Path, pg_engine: EngineFactory):
    assert run_scenario(path, pg_engine, program_from="dict") > 0


@needs_postgres
def test_state_persists_across_engines_and_drop_removes_it():
    program = crm.Program.default_demo()
    schema = fresh_schema()
    first = crm.Engine.open_postgres(program, PG_URL, schema=schema)
    try:
        assert repr(first) == f"Engine(program='Default', store='postgres', schema='{schema}')"
        assert first.path is None
        first.create_member("m1", now=NOW)
        first.record_order(id="o1", member_id="m1", amount="100", placed_at=NOW, now=NOW)
        balance = first.balance("m1", "reward", at="2024-06-01T00:00:00Z")
        # A second engine (its own pool) on the same schema sees the same state.
        second = crm.Engine.open_postgres(program, PG_URL, schema=schema, pool_size=1, connect_timeout=5)
        assert second.balance("m1", "reward", at="2024-06-01T00:00:00Z") == balance
        assert second.member("m1").order_count == 1
    finally:
        first.drop_store_schema()
    # Reopening the dropped schema starts empty.
    again = crm.Engine.open_postgres(program, PG_URL, schema=schema)
    try:
        with pytest.raises(crm.NotFound):
            again.member("m1")
    finally:
        again.drop_store_schema()


@needs_postgres
def test_threads_share_the_pool(pg_engine: EngineFactory):
    engine = pg_engine(crm.Program.default_demo())
    errors: List[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(10):
                member = f"t{t}-m{i}"
                engine.create_member(member, now=NOW)
                engine.record_order(id=f"{member}-o", member_id=member, amount="10", placed_at=NOW, now=NOW)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert sum(engine.member(f"t{t}-m{i}").order_count for t in range(4) for i in range(10)) == 40


# ----- errors (no server needed) --------------------------------------------------------


def test_unreachable_server_is_a_store_error():
    program = crm.Program.default_demo()
    with pytest.raises(crm.StoreError) as info:
        crm.Engine.open_postgres(program, "postgresql://postgres@127.0.0.1:1/test", connect_timeout=5)
    assert info.value.code == "store_error"
    assert info.value.field is None
    assert "connect" in str(info.value)


def test_malformed_url_is_a_store_error():
    with pytest.raises(crm.StoreError):
        crm.Engine.open_postgres(crm.Program.default_demo(), "postgresql://[::1")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"schema": "1starts_with_digit"}, "schema"),
        ({"schema": 'crm"; DROP SCHEMA public; --'}, "schema"),
        ({"schema": ""}, "schema"),
        ({"schema": 7}, "schema"),
        ({"pool_size": 0}, "pool_size"),
        ({"pool_size": True}, "pool_size"),
        ({"connect_timeout": -1}, "connect_timeout"),
        ({"connect_timeout": "5"}, "connect_timeout"),
    ],
)
def test_bad_options_are_validation_errors(kwargs: dict, field: str):
    # Options are checked before any connection is attempted.
    with pytest.raises(crm.ValidationError) as info:
        crm.Engine.open_postgres(crm.Program.default_demo(), "postgresql://postgres@127.0.0.1:1/test", **kwargs)
    assert info.value.field == field


def test_program_and_url_types_are_checked():
    with pytest.raises(crm.ValidationError) as info:
        crm.Engine.open_postgres("not a program", "postgresql://x")  # type: ignore[arg-type]
    assert info.value.field == "program"
    with pytest.raises(crm.ValidationError) as info:
        crm.Engine.open_postgres(crm.Program.default_demo(), None)  # type: ignore[arg-type]
    assert info.value.field == "url"


def test_drop_store_schema_needs_a_postgres_engine(tmp_path: Path):
    for engine in (crm.Engine(crm.Program.default_demo()), crm.Engine(crm.Program.default_demo(), tmp_path / "x.db")):
        with pytest.raises(crm.Conflict):
            engine.drop_store_schema()


# ----- TLS ---------------------------------------------------------------------------

SNAKEOIL = Path("/etc/ssl/certs/ssl-cert-snakeoil.pem")  # Debian's server certificate, CN=localhost


def with_params(url: str, params: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{params}"


@pytest.mark.parametrize(
    "params, field",
    [
        ("sslmode=allow", "sslmode"),
        ("sslmode=verify-full", "sslrootcert"),
        ("sslmode=verify-ca&sslrootcert=/nonexistent/root.pem", "sslrootcert"),
        ("sslmode=require&sslcert=/etc/client.pem", "sslkey"),
        ("sslcert=/nonexistent/client.pem&sslkey=/nonexistent/client.key", "sslcert"),
    ],
)
def test_tls_settings_the_store_cannot_follow_are_validation_errors(params: str, field: str):
    # Checked before any connection is attempted.
    with pytest.raises(crm.ValidationError) as info:
        crm.Engine.open_postgres(crm.Program.default_demo(), with_params("postgresql://postgres@127.0.0.1:1/test", params))
    assert info.value.field == field
    assert field in str(info.value)


@needs_postgres
def test_tls_checks_the_certificate_as_sslmode_says():
    if not SNAKEOIL.exists():
        pytest.skip(f"{SNAKEOIL} not found")
    program = crm.Program.default_demo()
    schema = fresh_schema()
    try:
        engine = crm.Engine.open_postgres(
            program, with_params(PG_URL, f"sslmode=verify-ca&sslrootcert={SNAKEOIL}"), schema=schema
        )
    except crm.StoreError as e:
        if "does not support TLS" in str(e):
            pytest.skip("the test server does not offer TLS")
        raise
    try:
        engine.create_member("m1", now=NOW)
        assert engine.member("m1").id == "m1"
        if "127.0.0.1" in PG_URL:
            # The certificate names `localhost`, not the address connected to.
            with pytest.raises(crm.StoreError) as info:
                crm.Engine.open_postgres(
                    program, with_params(PG_URL, f"sslmode=verify-full&sslrootcert={SNAKEOIL}"), schema=schema
                )
            assert "certificate" in str(info.value)
            by_name = crm.Engine.open_postgres(
                program,
                with_params(PG_URL.replace("127.0.0.1", "localhost"), f"sslmode=verify-full&sslrootcert={SNAKEOIL}"),
                schema=schema,
            )
            assert by_name.member("m1").id == "m1"
    finally:
        engine.drop_store_schema()
