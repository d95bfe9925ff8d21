"""Store round trips (SQLite, and PostgreSQL when configured), migrations, busy retries."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import OperationalError
from sync_fakes import T0, change, incident
from sync_helpers import pg_url, reset_pg

from ticketlint.mapping.model import Approval, Person
from ticketlint.store import repository as repo
from ticketlint.store.db import (
    SCHEMA_HEAD,
    Store,
    alembic_config,
    current_revision,
    head_revision,
    lz4_available,
    open_store,
    postgres_since,
    retry_locked,
    upgrade,
)
from ticketlint.store.models import Base

NOW = datetime(2026, 3, 5, tzinfo=timezone.utc)


def _migrated(url: str) -> Store:
    """A store built by running every migration (an empty one opens without them)."""
    store = open_store(url, migrate=False)
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    return store


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything the database says of its tables; on SQLite also their DDL text."""
    insp = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        schema[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"], c.get("default"))
                for c in insp.get_columns(table)
            ],
            "primary key": insp.get_pk_constraint(table),
            "foreign keys": sorted(insp.get_foreign_keys(table), key=repr),
            "indexes": sorted(insp.get_indexes(table), key=repr),
            "unique": sorted(insp.get_unique_constraints(table), key=repr),
            "checks": sorted(insp.get_check_constraints(table), key=repr),
        }
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            schema["sqlite_master"] = [
                (kind, name, " ".join((sql or "").split())) for kind, name, sql in rows
            ]
    if engine.dialect.name == "postgresql":
        schema["compression"] = _compression(engine)
    with engine.connect() as conn:
        schema["recorded revision"] = conn.exec_driver_sql(
            "SELECT version_num FROM alembic_version"
        ).all()
    return schema


def _compression(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, method) of every column given a compression method of its own
    (PostgreSQL 14 and later; ``l``: LZ4)."""
    if not postgres_since(engine.dialect, (14,)):
        return []
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT c.relname, a.attname, a.attcompression FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r' AND a.attnum > 0"
            " AND a.attcompression <> '' ORDER BY 1, 2"
        )
        return [tuple(row) for row in rows]


def test_records_json_is_compressed_with_lz4_on_postgresql() -> None:
    """A PostgreSQL store (14+, built with LZ4) compresses records' JSON with LZ4, whether
    created at the head or migrated to it; a downgrade gives the columns back to the
    server's default."""
    url = pg_url()
    reset_pg(url)
    store = open_store(url)
    with store.engine.connect() as conn:
        lz4_built = lz4_available(conn)
    if not lz4_built:
        store.dispose()
        pytest.skip("this PostgreSQL has no LZ4 (older than 14, or built without it)")
    lz4 = [("records", "data", "l"), ("records", "raw", "l")]
    assert _compression(store.engine) == lz4
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
    assert _compression(store.engine) == []
    with store.engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    assert _compression(store.engine) == lz4
    store.dispose()


def test_migrations_match_the_models(db_url: str) -> None:
    store = _migrated(db_url)
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    store.dispose()
    assert diffs == []


def test_an_empty_database_gets_the_schema_the_migrations_build(
    db_url: str, tmp_path: Path
) -> None:
    """A first open creates the models' tables and records the head at once; every
    table, column, key, index and constraint (on SQLite the DDL text itself) is what
    running the migrations one by one gives."""
    migrated = _migrated(db_url)
    expected = _schema(migrated.engine)
    migrated.dispose()
    if db_url.startswith("sqlite"):
        db_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        reset_pg(db_url)  # every table, Alembic's version table included
    fresh = open_store(db_url, migrate=False)
    assert upgrade(fresh.engine) is None  # it was empty
    assert _schema(fresh.engine) == expected
    assert current_revision(fresh.engine) == SCHEMA_HEAD
    with fresh.engine.begin() as conn:  # Alembic takes it from there, both ways
        command.downgrade(alembic_config(conn), "0001")
        command.upgrade(alembic_config(conn), "head")
    assert _schema(fresh.engine) == expected
    fresh.dispose()


def test_a_database_with_other_tables_is_migrated_by_alembic(tmp_path: Path) -> None:
    """Only an empty database is created directly: one holding a table of its own goes
    through the migrations (in a child process, to see Alembic imported)."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = (
        "import sys\n"
        "from ticketlint.store.db import open_store, upgrade\n"
        f"store = open_store({url!r}, migrate=False)\n"
        "with store.engine.begin() as conn:\n"
        "    conn.exec_driver_sql('CREATE TABLE someone_elses (n INTEGER)')\n"
        "print(upgrade(store.engine))\n"
        "print('alembic' in sys.modules)\n"
        "store.dispose()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "True"]
    store = open_store(url, migrate=False)
    assert current_revision(store.engine) == SCHEMA_HEAD
    assert "someone_elses" in inspect(store.engine).get_table_names()
    store.dispose()


def test_records_round_trip_and_upsert_is_idempotent(store) -> None:  # type: ignore[no-untyped-def]
    rec = change(
        "jira-prod",
        "CHG-1",
        backout="x",
        assignee=Person(id="a1", name="Ann"),
        approvals=[Approval(approver=Person(name="Bob"), decision="approved", decided_at=T0)],
    )
    with store.session() as s, s.begin():
        repo.upsert_records(s, [rec, incident("jira-prod", "INC1")], NOW)
    with store.session() as s, s.begin():
        repo.upsert_records(s, [rec], NOW)  # a re-read page after a crash
    with store.session() as s:
        loaded = sorted(repo.load_records(s, "jira-prod"), key=lambda r: r.key)
    assert [r.key for r in loaded] == ["CHG-1", "INC1"]
    assert loaded[0] == rec  # every field, raw included, survives the round trip
    assert loaded[0].approvals[0].decided_at == T0  # type: ignore[index]


def _plan_cache_mode(session: Any) -> str | None:
    """PostgreSQL's ``plan_cache_mode`` in this transaction (None elsewhere)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    return str(session.execute(text("SHOW plan_cache_mode")).scalar())


def test_the_custom_plans_give_back_the_roles_own_setting() -> None:
    """After the read of stored versions, the rest of the transaction plans as the
    database role is set to (an administrator's ``ALTER ROLE ... SET``), not as "auto"."""
    url = pg_url()
    reset_pg(url)
    admin = open_store(url)
    with admin.engine.begin() as conn:
        conn.exec_driver_sql("ALTER ROLE CURRENT_USER SET plan_cache_mode = force_generic_plan")
    try:
        store = open_store(url)  # its connections start with the role's setting
        with store.session() as s, s.begin():
            assert _plan_cache_mode(s) == "force_generic_plan"
            assert repo.stored_versions(s, {("jira-prod", "CHG-1")}) == {}
            assert _plan_cache_mode(s) == "force_generic_plan"
        store.dispose()
    finally:
        with admin.engine.begin() as conn:
            conn.exec_driver_sql("ALTER ROLE CURRENT_USER RESET plan_cache_mode")
        admin.dispose()


def test_one_read_of_stored_versions_answers_changed_and_reread(store) -> None:  # type: ignore[no-untyped-def]
    """A batch's stored versions, read once, give what the two queries gave: how many
    records changed (new, different or deleted) and whether one was stored since a time
    (a re-read within the run); the same answers read by either function alone. Also
    on PostgreSQL, where the read runs with custom plans inside the transaction."""
    later = NOW + timedelta(minutes=5)
    same, edited, gone = (
        change("jira-prod", "CHG-1"),
        change("jira-prod", "CHG-2"),
        change("jira-prod", "CHG-3"),
    )
    other = incident("snow-prod", "CHG-4")  # another source: not a re-read of jira-prod
    with store.session() as s, s.begin():
        repo.upsert_records(s, [gone], NOW - timedelta(hours=1))
        repo.upsert_records(s, [same, edited], NOW)
        repo.upsert_records(s, [other], later)
    with store.session() as s, s.begin():
        assert repo.mark_unseen_deleted(s, "jira-prod", NOW) == ["CHG-3"]
    batch = [
        same,
        change("jira-prod", "CHG-2", backout="new plan"),
        gone,
        incident("jira-prod", "NEW-1"),
    ]
    with store.session() as s, s.begin():
        mode = _plan_cache_mode(s)
        versions = repo.stored_versions(s, {(r.source, r.key) for r in [*batch, other]})
        assert _plan_cache_mode(s) == mode  # the custom plans end with the read
        assert sorted(versions) == [
            ("jira-prod", "CHG-1"),
            ("jira-prod", "CHG-2"),
            ("jira-prod", "CHG-3"),
            ("snow-prod", "CHG-4"),
        ]
        assert versions[("jira-prod", "CHG-3")].deleted
        assert versions[("snow-prod", "CHG-4")].seen_at == later
        # CHG-2 edited, CHG-3 deleted, NEW-1 new; CHG-1 the same
        assert repo.changed_count(s, batch, stored=versions) == 3
        assert repo.changed_count(s, batch) == 3
        keys = [r.key for r in batch]
        for since, source, expected in (
            (NOW, "jira-prod", True),  # stored at NOW: at or after it
            (later, "jira-prod", False),
            (later, "snow-prod", False),  # CHG-4 is not among the batch's keys ...
        ):
            assert repo.stored_since(s, source, keys, since, stored=versions) is expected
            assert repo.stored_since(s, source, keys, since) is expected
        # ... and is, under its own source, when asked for
        assert repo.stored_since(s, "snow-prod", ["CHG-4"], later, stored=versions)
        assert repo.upsert_records(s, batch, later) == 4  # the transaction still writes
        if mode is not None:
            s.execute(text("RESET plan_cache_mode"))


TRICKY = 'tab\there, new\nline, back\\slash, "quoted", \\N, ünïcødé \u2028, lone \ud800'
"""What COPY's text format must escape (tab, newline, backslash, a literal \\N), what
JSON must escape, and a lone surrogate (the data column's fallback encoder)."""


def _copied_batch(source: str) -> list[Any]:
    return [
        incident(source, "INC-1", title=TRICKY, notes="ok"),
        change(source, "CHG-1", backout="plan", minutes=-7 * 60),
        incident(source, "INC-2").model_copy(update={"updated_at": None}),
        incident(source, "INC-3").model_copy(update={"raw": {"nested": [1, 2.5, None, TRICKY]}}),
    ]


def _stored_rows(store: Store, source: str) -> list[tuple[Any, ...]]:
    """Every column of the source's records as the database holds it (JSON as text), in
    id order, the source's own name taken out of the data."""
    with store.session() as s:
        rows = s.execute(
            text(
                "SELECT id, key, process, CAST(data AS TEXT), CAST(raw AS TEXT), updated_at,"
                " seen_at, deleted FROM records WHERE source = :source ORDER BY id"
            ),
            {"source": source},
        ).all()
    quoted = f'"source":"{source}"'
    return [(key, p, d.replace(quoted, "*"), *rest) for _, key, p, d, *rest in rows]


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], bool]]:
    """Each ``COPY`` of new records tried: the keys it was given, whether it wrote them."""
    tried: list[tuple[list[str], bool]] = []
    real = repo._copy_new

    def spy(session: Any, rows: Any) -> bool:
        tried.append(([row["key"] for row in rows], real(session, rows)))
        return tried[-1][1]

    monkeypatch.setattr(repo, "_copy_new", spy)
    return tried


def test_new_records_copied_in_are_stored_as_the_upsert_stores_them(
    store: Store, copies: list[tuple[list[str], bool]]
) -> None:
    """On PostgreSQL a batch's records whose keys the store does not hold (``existing``,
    read in the same transaction) go in with one COPY: the same text in every column, the
    same times (a -07:00 one too), ids in the batch's order, as the upsert gives. SQLite
    always upserts."""
    with store.session() as s, s.begin():
        assert repo.upsert_records(s, _copied_batch("copied"), NOW, existing=set()) == 4
        assert repo.upsert_records(s, _copied_batch("upserted"), NOW) == 4
    postgres = store.engine.dialect.name == "postgresql"
    assert copies == ([(["INC-1", "CHG-1", "INC-2", "INC-3"], True)] if postgres else [])
    assert _stored_rows(store, "copied") == _stored_rows(store, "upserted")
    assert [key for key, *_ in _stored_rows(store, "copied")] == [
        "INC-1",
        "CHG-1",
        "INC-2",
        "INC-3",
    ]
    with store.session() as s:
        loaded = {r.key: r for r in repo.load_records(s, "copied", with_raw=True)}
    assert loaded["INC-1"].title == TRICKY
    assert loaded["CHG-1"].updated_at == T0 - timedelta(hours=7)
    assert loaded["INC-2"].updated_at is None
    assert loaded["INC-3"].raw == {"nested": [1, 2.5, None, TRICKY]}


def test_a_batch_with_keys_new_and_stored_copies_only_the_new_ones(
    store: Store, copies: list[tuple[list[str], bool]]
) -> None:
    """The stored keys of a batch are upserted (edited, and un-deleted), the new ones
    copied; the rows are those of one upsert of the whole batch."""
    for source in ("mixed", "upserted"):
        with store.session() as s, s.begin():
            repo.upsert_records(s, [incident(source, "INC-1"), change(source, "CHG-1")], NOW)
        with store.session() as s, s.begin():
            repo.mark_unseen_deleted(s, source, NOW + timedelta(seconds=1))
    later = NOW + timedelta(hours=1)
    batch = [
        incident("mixed", "INC-1", notes="edited"),
        incident("mixed", "NEW-1"),
        change("mixed", "CHG-1"),
        incident("mixed", "NEW-2", title=TRICKY),
    ]
    with store.session() as s, s.begin():
        existing = repo.stored_versions(s, {(r.source, r.key) for r in batch})
        assert sorted(existing) == [("mixed", "CHG-1"), ("mixed", "INC-1")]
        assert repo.upsert_records(s, batch, later, existing=existing) == 4
    postgres = store.engine.dialect.name == "postgresql"
    assert copies == ([(["NEW-1", "NEW-2"], True)] if postgres else [])
    with store.session() as s, s.begin():
        repo.upsert_records(s, [r.model_copy(update={"source": "upserted"}) for r in batch], later)
    assert _stored_rows(store, "mixed") == _stored_rows(store, "upserted")
    with store.session() as s:
        assert sorted(r.key for r in repo.load_records(s, "mixed")) == [
            "CHG-1",
            "INC-1",
            "NEW-1",
            "NEW-2",
        ]


def test_a_key_stored_since_it_was_read_sends_the_batch_through_the_upsert(
    store: Store, copies: list[tuple[list[str], bool]]
) -> None:
    """Another writer stored one of the keys after the batch's read (``existing`` is
    stale): the COPY fails on the unique key inside its savepoint, nothing of it stays,
    and the upsert writes the whole batch in the same, still usable, transaction."""
    with store.session() as s, s.begin():
        repo.upsert_records(s, [incident("jira-prod", "INC-1")], NOW)
    later = NOW + timedelta(hours=1)
    with store.session() as s, s.begin():
        batch = [incident("jira-prod", "INC-0"), incident("jira-prod", "INC-1", notes="edited")]
        assert repo.upsert_records(s, batch, later, existing=set()) == 2
        assert s.execute(text("SELECT count(*) FROM records")).scalar_one() == 2
    postgres = store.engine.dialect.name == "postgresql"
    assert copies == ([(["INC-0", "INC-1"], False)] if postgres else [])
    with store.session() as s:
        loaded = {r.key: r for r in repo.load_records(s, "jira-prod")}
        seen = dict(s.execute(text("SELECT key, seen_at FROM records")).all())
    assert sorted(loaded) == ["INC-0", "INC-1"]
    assert loaded["INC-1"].resolution_notes == "edited"
    assert {str(v)[:19] for v in seen.values()} == {later.strftime("%Y-%m-%d %H:%M:%S")}


@pytest.mark.parametrize(
    ("count", "most", "multiple", "sizes"),
    [
        (9, 5, 2, [4, 5]),  # one round of 2 parts (5, 4 before: not as many)
        (11, 5, 2, [2, 3, 3, 3]),  # two rounds (5, 5, 1 before: one worker idle at the end)
        (3, 5, 2, [1, 2]),  # smaller than a task: still one part a worker
        (1, 5, 4, [1]),  # never an empty part
        (10, 5, 1, [5, 5]),
        (0, 5, 2, []),
    ],
)
def test_id_ranges_give_every_worker_as_many_records(  # type: ignore[no-untyped-def]
    store, count: int, most: int, multiple: int, sizes: list[int]
) -> None:
    """The parts of a parallel evaluation: every record once, in id order, at most
    ``most`` a part, as many parts as a multiple of the workers allows, sizes within one."""
    records = [incident("jira-prod", f"INC{n}") for n in range(count)]
    records += [change("jira-prod", "CHG-1")]  # another process: not in the ranges
    with store.session() as s, s.begin():
        repo.upsert_records(s, records, NOW)
    with store.session() as s:
        ranges = repo.id_ranges(s, "jira-prod", {"incident"}, most, multiple=multiple)
        loaded = [
            [r.key for r in repo.load_records(s, "jira-prod", processes={"incident"}, ids=ids)]
            for ids in ranges
        ]
    assert [len(part) for part in loaded] == sizes
    assert [key for part in loaded for key in part] == [f"INC{n}" for n in range(count)]


def test_records_with_lone_surrogates_are_stored_escaped(store) -> None:  # type: ignore[no-untyped-def]
    # pydantic cannot encode a lone surrogate as UTF-8: the record is stored through the
    # dict path, escaped, and comes back as it went in.
    rec = change("jira-prod", "CHG-9", backout="plan \udc80 b")
    rec = rec.model_copy(update={"raw": {"summary": "s\ud800"}})
    with store.session() as s, s.begin():
        repo.upsert_records(s, [rec], NOW)
    with store.session() as s:
        (loaded,) = repo.load_records(s, "jira-prod")
    assert loaded == rec


def test_records_load_from_their_json_text_as_they_went_in(store) -> None:  # type: ignore[no-untyped-def]
    """Without raw JSON, a stored record is parsed and validated from its text by
    pydantic in one pass; a lone surrogate (whose escape pydantic's parser refuses) goes
    json's way. Either way the record that went in, on SQLite and PostgreSQL."""
    went_in = [
        change(
            "jira-prod",
            "CHG-1",
            backout="José's plan €😀",
            approvals=[Approval(approver=Person(name="Zoë"), decision="approved", decided_at=T0)],
        ),
        change("jira-prod", "CHG-2", backout="plan \udc80 b"),
        incident("jira-prod", "INC-1", notes="", minutes=3),
    ]
    with store.session() as s, s.begin():
        repo.upsert_records(s, went_in, NOW)
    with store.session() as s:
        without_raw = [r.model_copy(update={"raw": {}}) for r in went_in]
        assert list(repo.load_records(s, "jira-prod", with_raw=False)) == without_raw
        assert list(repo.load_records(s, "jira-prod", processes={"incident"})) == went_in[2:]


def test_records_are_stored_as_compact_json(store) -> None:  # type: ignore[no-untyped-def]
    # Both columns are UTF-8 text: non-ASCII characters as themselves, not escaped.
    rec = change("jira-prod", "CHG-2", backout="José's plan")
    rec = rec.model_copy(update={"raw": {"fields": {"summary": "é, ok €😀"}}})
    with store.session() as s, s.begin():
        repo.upsert_records(s, [rec], NOW)
    with store.engine.connect() as conn:
        data, raw = conn.exec_driver_sql(
            "SELECT CAST(data AS TEXT), CAST(raw AS TEXT) FROM records"
        ).one()
    assert data == rec.model_dump_json(exclude={"raw"})
    assert "José's plan" in data
    assert raw == '{"fields":{"summary":"é, ok €😀"}}'
    with store.session() as s:
        assert list(repo.load_records(s, "jira-prod")) == [rec]


def test_a_postgresql_database_of_the_c_locale_stores_utf8() -> None:
    # A cluster initialised under LANG=C creates SQL_ASCII databases. Before the store
    # asked for client_encoding utf8, psycopg returned their text as bytes and opening the
    # store failed with a TypeError in SQLAlchemy's server version check.
    url = pg_url()
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    name = "ticketlint_test_sql_ascii"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
            conn.exec_driver_sql(
                f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                "LC_COLLATE 'C' LC_CTYPE 'C'"
            )
    except DBAPIError as exc:  # e.g. a role that may not create databases
        admin.dispose()
        pytest.skip(f"cannot create a SQL_ASCII database here: {exc}")
    try:
        store = open_store(make_url(url).set(database=name).render_as_string(hide_password=False))
        rec = change("jira-prod", "CHG-3", backout="José's plan €")
        rec = rec.model_copy(update={"raw": {"fields": {"summary": "Zürich 😀"}}})
        with store.session() as s, s.begin():
            repo.upsert_records(s, [rec], NOW)
        with store.session() as s:
            assert list(repo.load_records(s, "jira-prod")) == [rec]
        store.dispose()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


def test_watermarks_never_move_backwards(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as s, s.begin():
        repo.set_watermark(s, "jira-prod", "change", T0)
    with store.session() as s, s.begin():
        repo.set_watermark(s, "jira-prod", "change", T0 - timedelta(days=1))
        repo.set_watermark(s, "jira-prod", "incident", T0)
    with store.session() as s:
        assert repo.get_watermarks(s, "jira-prod") == {"change": T0, "incident": T0}
        assert repo.get_watermarks(s, "other") == {}


def test_unseen_records_are_marked_deleted(store) -> None:  # type: ignore[no-untyped-def]
    with store.session() as s, s.begin():
        repo.upsert_records(s, [change("a", "C1"), change("a", "C2")], NOW)
    later = NOW + timedelta(hours=1)
    with store.session() as s, s.begin():
        repo.upsert_records(s, [change("a", "C2")], later)
        assert repo.mark_unseen_deleted(s, "a", later) == ["C1"]
    with store.session() as s:
        assert [r.key for r in repo.load_records(s, "a")] == ["C2"]
        assert repo.stored_keys(s, "a") == {"C2"}


def test_first_open_migrates_an_empty_sqlite_file(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'deep' / 'dir' / 'x.db'}")
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    store.dispose()


def test_schema_head_is_the_newest_migration() -> None:
    assert head_revision() == SCHEMA_HEAD


def test_a_store_behind_the_head_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = open_store(url, migrate=False)
    upgrade(store.engine, "0001")
    assert current_revision(store.engine) == "0001"
    assert upgrade(store.engine) == "0001"  # what it was at before
    assert current_revision(store.engine) == SCHEMA_HEAD
    assert upgrade(store.engine) == SCHEMA_HEAD  # at the head: nothing to do
    store.dispose()


@pytest.mark.parametrize("created_here", [True, False])
def test_opening_a_store_at_the_head_does_not_import_alembic(
    tmp_path: Path, created_here: bool
) -> None:
    """Neither opening a store at the head nor creating one in an empty file."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    if created_here:
        open_store(url).dispose()
    script = (
        "import sys\n"
        "from ticketlint.store.db import open_store\n"
        f"open_store({url!r}).dispose()\n"
        "print(any(m == 'alembic' or m.startswith('alembic.') for m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_locked_sqlite_database_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = open_store(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock for a moment
    threading.Timer(0.5, blocker.rollback).start()
    t0 = time.monotonic()
    with store.session() as s, s.begin():
        repo.set_watermark(s, "a", "b", T0)
    assert time.monotonic() - t0 >= 0.4
    with store.session() as s:
        assert repo.get_watermarks(s, "a") == {"b": T0}
    blocker.close()
    store.dispose()


def test_retry_locked_retries_only_lock_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    calls = {"n": 0}

    @retry_locked
    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    assert flaky() == "done" and calls["n"] == 3

    @retry_locked
    def broken() -> None:
        calls["n"] += 1
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x"))

    calls["n"] = 0
    with pytest.raises(OperationalError):
        broken()
    assert calls["n"] == 1


def _unit_of_work_insert(session: Any, new: Any, now: datetime) -> dict[str, int]:
    """The reference for ``repository._insert_new``: the ORM's unit of work adds each new
    finding's row (what the store did before it inserted them in one executemany)."""
    from ticketlint.store.models import FindingRow

    added = []
    for one in new:
        row = FindingRow(fingerprint=one.fingerprint, first_seen=now, reopened=0)
        repo._apply(row, one, now)
        session.add(row)
        added.append(row)
    session.flush()
    return {row.fingerprint: row.id for row in added}


def _lifecycle_rounds(
    store: Any, bulk: bool, monkeypatch: pytest.MonkeyPatch, *, rows_held: bool = False
) -> Any:
    """Three runs of findings through apply_diff_chunked (new, kept, resolved, reopened,
    waived), or apply_diff on the source's ORM rows (``rows_held``, as ``serve`` writes);
    the findings and events tables as written."""
    from ticketlint.rules.engine import Finding, fingerprint
    from ticketlint.store import lifecycle
    from ticketlint.store.models import FindingEventRow, FindingRow
    from ticketlint.store.waivers import WaiverRule

    if not bulk:
        monkeypatch.setattr(repo, "_insert_new", _unit_of_work_insert)

    def found(key: str, code: str = "CHG006") -> Finding:
        return Finding(
            code=code, name="n", title="t", severity="high", clause="8.5", source="a",
            key=key, process="change", url=f"https://x/{key}", message=f"missing {key}",
            assignee="Ann", group="ops", fingerprint=fingerprint(code, "a", key),
            remediation="r", evidence={"k": [1, "é"]},
        )  # fmt: skip

    waiver = WaiverRule("W1", "CHG006", "C4", "accepted", "j.doe", date(2027, 1, 1))
    rounds = [
        [found("C1"), found("C2"), found("C3"), found("C1", "CHG001")],
        [found("C2"), found("C4"), found("C5")],  # C1, C3 resolved; C4 waived; C5 new
        [found("C1"), found("C2"), found("C4")],  # C1 reopened; C5 resolved
    ]
    for number, findings in enumerate(rounds):
        now = NOW + timedelta(days=number)
        with store.session() as s, s.begin():
            run = repo.start_run(s, started_at=now, as_of=now, options={})
            changes = lifecycle.diff(
                repo.stored_findings(s, "a"), findings, waivers=[waiver], as_of=now
            )
            if rows_held:
                rows = repo.findings_of_source(s, "a")
                repo.apply_diff(s, rows, changes, run_id=run.id, now=now)
            else:
                repo.apply_diff_chunked(s, "a", changes, run_id=run.id, now=now, chunk=2)
    with store.session() as s:
        columns = [c.key for c in FindingRow.__mapper__.column_attrs]
        rows = [
            {c: getattr(r, c) for c in columns}
            for r in s.scalars(select(FindingRow).order_by(FindingRow.id))
        ]
        events = [
            (e.id, e.finding_id, e.kind, e.at, e.detail)
            for e in s.scalars(select(FindingEventRow).order_by(FindingEventRow.id))
        ]
    return rows, events


@pytest.mark.parametrize("bulk", [True, False], ids=["executemany", "unit-of-work"])
def test_chunked_diff_updates_by_id_what_the_held_rows_write(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    """apply_diff_chunked updates stored findings by id (an executemany, no row read
    back): the same rows, ids and events as apply_diff setting the loaded ORM rows."""
    chunked = _lifecycle_rounds(store, bulk, monkeypatch)
    reference_store = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference = _lifecycle_rounds(reference_store, bulk, monkeypatch, rows_held=True)
    finally:
        reference_store.dispose()
    assert chunked == reference
    rows, _ = chunked
    assert {r["state"] for r in rows} >= {"open", "resolved", "waived"}
    assert any(r["reopened"] == 1 for r in rows)
    assert len({r["last_seen"] for r in rows}) > 1  # kept findings were updated


def test_new_findings_written_at_once_are_what_the_unit_of_work_writes(
    store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New finding rows inserted in one executemany (their ids read back by fingerprint)
    and their events: the same rows, ids and events as the ORM's unit of work writes."""
    bulk = _lifecycle_rounds(store, True, monkeypatch)
    reference_store = open_store(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference = _lifecycle_rounds(reference_store, False, monkeypatch)
    finally:
        reference_store.dispose()
    assert bulk == reference
    rows, events = bulk
    assert len(rows) == 6 and {r["state"] for r in rows} >= {"open", "resolved", "waived"}
    assert any(r["reopened"] == 1 for r in rows)
    assert len(events) >= 9


def test_new_finding_rows_that_set_different_columns_are_refused(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Core would compile the executemany from the first row and drop the second row's
    # extra column silently; the store refuses instead of losing a value.
    from ticketlint.rules.engine import Finding, fingerprint
    from ticketlint.store import lifecycle

    values = repo._values
    calls = {"n": 0}

    def uneven(change: Any, now: datetime, reopened: int) -> dict[str, Any]:
        calls["n"] += 1
        out = values(change, now, reopened)
        if calls["n"] == 2:
            out["extra_column_name"] = 1
        return out

    def found(key: str) -> Finding:
        return Finding(
            code="CHG006", name="n", title="t", severity="high", clause="8.5", source="a",
            key=key, process="change", url=f"https://x/{key}", message="m", assignee=None,
            group=None, fingerprint=fingerprint("CHG006", "a", key), remediation="r",
            evidence={},
        )  # fmt: skip

    monkeypatch.setattr(repo, "_values", uneven)
    monkeypatch.setitem(repo._FINDING_COLUMNS, "extra_column_name", "extra_column_name")
    with store.session() as s, s.begin():
        changes = lifecycle.diff({}, [found("C1"), found("C2")], waivers=[], as_of=NOW)
        with pytest.raises(RuntimeError, match="different columns"):
            repo.apply_diff_chunked(s, "a", changes, run_id=None, now=NOW)
