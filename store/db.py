"""Database engines and sessions: SQLite (WAL, busy timeout) or PostgreSQL (psycopg 3).

``open_store(url)`` is the one entry point: it creates the engine with the right
settings, migrates the schema to the newest revision (a first run needs no separate
``ticketlint db upgrade``) and returns a :class:`Store` holding the engine and a session
factory. A busy SQLite database is waited for (``busy_timeout``) and, past that, retried
by :func:`retry_locked`.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import CursorResult, Result, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential
from typing_extensions import Unpack

from ticketlint.store.jsontext import serialize

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMA_HEAD = "0003"
"""The newest migration's revision (a test checks it against Alembic's script
directory). A store already there opens without importing Alembic, which with Mako
and Pygments is ~0.1 s of every command that opens the store."""
BUSY_TIMEOUT_MS = 30_000
T = TypeVar("T")


class StoreError(Exception):
    """The database cannot be opened or migrated. Exit code 2."""

    exit_code = 2


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3; SQLite paths get their folder."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for PostgreSQL and in-memory databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def rows_matched(result: Result[Unpack[tuple[Any, ...]]]) -> int:
    """The rows an UPDATE or DELETE run through ``Session.execute`` matched. The session
    types its result as a plain Result; for such statements it is a CursorResult, which
    alone carries the count."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the result of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount


_open_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
"""Every engine this process created and has not freed (see :func:`dispose_open_engines`)."""


def dispose_open_engines() -> None:
    """Close the connections of every engine still open: before a process leaves without
    the interpreter's teardown (:mod:`ticketlint.exiting`), so that SQLite checkpoints its
    write-ahead log and removes the ``-wal`` and ``-shm`` files, as on a normal exit."""
    for engine in list(_open_engines):
        engine.dispose()


def create_db_engine(url: str) -> Engine:
    engine = _create_db_engine(url)
    _open_engines.add(engine)
    return engine


def _create_db_engine(url: str) -> Engine:
    url = normalise_url(url)
    path = sqlite_path(url)
    if make_url(url).get_backend_name() == "sqlite":
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000}, json_serializer=serialize
        )
        _sqlite_settings(engine)
        return engine
    # A database created under the C locale has the SQL_ASCII encoding, where psycopg would
    # hand text back as bytes (SQLAlchemy cannot even read the server version) and refuse
    # to send non-ASCII text: the store's text is UTF-8, and PostgreSQL stores such a
    # database's bytes as they come. A client_encoding in the URL is left as it is, and
    # another driver is not given psycopg's parameter.
    parsed = make_url(url)
    connect_args = (
        {"client_encoding": "utf8"}
        if parsed.get_driver_name() == "psycopg" and "client_encoding" not in parsed.query
        else {}
    )
    try:
        return create_engine(
            url, pool_pre_ping=True, json_serializer=serialize, connect_args=connect_args
        )
    except ModuleNotFoundError as exc:  # psycopg is optional: only PostgreSQL users need it
        raise StoreError(
            f"cannot use {make_url(url).render_as_string(hide_password=True)}: {exc}; "
            "install psycopg (pip install 'psycopg[binary]')"
        ) from exc


def _sqlite_settings(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The driver's own implicit BEGIN is turned off so that "begin" below decides.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        cur.execute(
            "PRAGMA synchronous = NORMAL"
        )  # durable at checkpoints; WAL keeps it consistent
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")  # a WAL reader: neither waits for nor blocks a writer
            return
        # IMMEDIATE takes the write lock up front: a deferred transaction that later
        # upgrades to a writer fails at once with "database is locked" (busy_timeout does
        # not apply to the upgrade), IMMEDIATE waits instead. WAL readers are not blocked.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


READ_ONLY = "ticketlint_read_only"
"""Execution option of :func:`open_reader`'s engine."""


def _is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, OperationalError) and (
        "database is locked" in text
        or "database is busy" in text
        or "database table is locked" in text
    )


def retry_locked(func: Callable[..., T]) -> Callable[..., T]:
    """Retry ``func`` when the database stays locked past the busy timeout."""
    return retry(
        retry=retry_if_exception(_is_locked),
        stop=stop_after_attempt(5),
        wait=wait_exponential(multiplier=0.5, max=10),
        reraise=True,
        before_sleep=lambda state: log.warning(
            "database is locked; retrying (attempt %d)", state.attempt_number
        ),
    )(func)


def alembic_config(connection: Any | None = None) -> AlembicConfig:
    """The Alembic configuration, built in code (no alembic.ini at runtime)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _at_schema_head(engine: Engine) -> bool:
    """Whether the store's one recorded revision is :data:`SCHEMA_HEAD`, read with plain
    SQL from Alembic's own version table (False when there is none yet)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    return [row[0] for row in rows] == [SCHEMA_HEAD]


_ALEMBIC_VERSION = Table(
    "alembic_version",
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
"""Alembic's version table, as Alembic itself creates it."""


LZ4_COLUMNS = {"records": ("data", "raw")}
"""Columns whose values PostgreSQL compresses with LZ4 instead of its own pglz: a record's
JSON (its source JSON several KB for a Jira issue) is written on every read that changed
it. A first sync of 20,000 records spent ~0.5 s of the server's CPU compressing them with
pglz, ~0.1 s with LZ4, for about the same size."""


def postgres_since(dialect: Any, version: tuple[int, ...]) -> bool:
    """Whether ``dialect`` (an engine's or a connection's) is PostgreSQL ``version`` or later."""
    return dialect.name == "postgresql" and (dialect.server_version_info or (0,)) >= version


def lz4_available(conn: Connection) -> bool:
    """Whether the server can compress a column with LZ4 (PostgreSQL 14+ built with it)."""
    return postgres_since(conn.dialect, (14,)) and bool(
        conn.execute(
            text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings"
                " WHERE name = 'default_toast_compression'"
            )
        ).scalar()
    )


def set_record_compression(conn: Connection, method: Literal["lz4", "DEFAULT"]) -> bool:
    """Compress :data:`LZ4_COLUMNS` with ``method`` (``lz4``, or ``DEFAULT``: the server's
    own) from now on; older values stay readable as they are. False, and nothing changed,
    where the server cannot: SQLite, PostgreSQL before 14, ``lz4`` on one built without it."""
    if not (lz4_available(conn) if method == "lz4" else postgres_since(conn.dialect, (14,))):
        return False
    for table, columns in LZ4_COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {c} SET COMPRESSION {method}" for c in columns)
        conn.execute(text(f"ALTER TABLE {table} {changes}"))
    return True


def _create_at_head(engine: Engine) -> bool:
    """An empty database gets the newest schema at once: the models' tables and
    Alembic's version table at :data:`SCHEMA_HEAD`, in one transaction, without
    importing Alembic (~0.2 s of a first sync). The same schema as running every
    migration (a test compares the two on SQLite and PostgreSQL); later migrations
    start from the recorded head as usual. False (nothing done) if any table exists."""
    from ticketlint.store.models import Base

    with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE, so a second opener waits
        if inspect(conn).get_table_names():
            return False
        Base.metadata.create_all(conn, checkfirst=False)
        set_record_compression(conn, "lz4")  # as migration 0003
        _ALEMBIC_VERSION.create(conn)
        conn.execute(_ALEMBIC_VERSION.insert().values(version_num=SCHEMA_HEAD))
    return True


@retry_locked
def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Migrate the schema; returns the revision it was at before (None: empty database)."""
    if revision == "head":
        if _at_schema_head(engine):
            return SCHEMA_HEAD
        if _create_at_head(engine):
            return None
    from alembic import command

    before = current_revision(engine)
    if before == head_revision() and revision == "head":
        return before
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)
    return before


@dataclass
class Store:
    """An open database: the engine, its URL and a session factory."""

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self.sessions()

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    url = normalise_url(url)
    try:
        engine = create_db_engine(url)
        if migrate:
            upgrade(engine)
    except OperationalError as exc:
        safe = make_url(url).render_as_string(hide_password=True)
        raise StoreError(f"cannot open the database {safe}: {exc.orig or exc}") from exc
    return Store(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))


def open_reader(url: str) -> Store:
    """A store that only reads, beside a writer (a forked worker of ``sync``): its
    SQLite transactions begin deferred, so readers run side by side instead of queueing
    for the write lock. No migration (the writer did it)."""
    store = open_store(url, migrate=False)
    engine = store.engine.execution_options(**{READ_ONLY: True})
    return Store(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
