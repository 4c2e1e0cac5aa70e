"""SQLAlchemy engines, explicit transactions and per-service Alembic migrations.

Each service owns its tables (its own `DeclarativeBase`) and its own migration history (its own
Alembic version table), so services can share one PostgreSQL/MariaDB database or use separate ones.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

log = logging.getLogger("stratus.db")
T = TypeVar("T")


def utcnow() -> dt.datetime:
    """Naive UTC (all columns store UTC without tzinfo, the same on every engine)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# Microsecond precision everywhere (MariaDB's DATETIME drops fractions unless told otherwise);
# token revocation compares issue times that can fall within one second.
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


class JSONText(TypeDecorator[Any]):
    """JSON kept as text: the same behaviour on SQLite, PostgreSQL and MariaDB."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else json.dumps(value, separators=(",", ":"), sort_keys=True)

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _begin_before_savepoint(conn: Any, _name: str) -> None:
    # Python's sqlite3 opens a transaction only at the first INSERT/UPDATE/DELETE; a SAVEPOINT
    # before that would be the outermost transaction and releasing it would commit at once.
    begin_immediate(conn)


def begin_immediate(conn: Any) -> None:
    """Open the SQLite transaction of SQLAlchemy connection `conn` now, with the write lock, unless
    one is open. Run on the driver's connection, so a lock not had within the busy timeout is
    raised as SQLAlchemy raises it ("database is locked", which `retrying` runs again)."""
    raw = conn.connection.dbapi_connection
    if raw is None or raw.in_transaction:
        return
    try:
        raw.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, exc) from exc


def normalize_url(url: str) -> str:
    """Pick the drivers we ship (psycopg 3, PyMySQL) for plain postgresql:// and mysql:// URLs."""
    for plain, driver in (("postgresql://", "postgresql+psycopg://"), ("postgres://", "postgresql+psycopg://"),
                          ("mysql://", "mysql+pymysql://"), ("mariadb://", "mysql+pymysql://")):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def make_engine(url: str, *, echo: bool = False) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, echo=echo, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "savepoint", _begin_before_savepoint)
        return engine
    if url.startswith("mysql"):
        # utf8mb4 so that any Unicode name round-trips; pre-ping drops connections the server closed.
        return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_recycle=3600,
                                connect_args={"charset": "utf8mb4"})
    return sa.create_engine(url, echo=echo, pool_pre_ping=True)


_RETRY_MYSQL_CODES = (1213, 1205)  # deadlock, lock wait timeout
_RETRY_SQLSTATES = ("40001", "40P01")  # serialization failure, deadlock


def is_retryable(exc: BaseException) -> bool:
    """A transaction the database aborted to break a deadlock (or SQLite busy): run it again."""
    if not isinstance(exc, sa.exc.DBAPIError) or isinstance(exc, sa.exc.IntegrityError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) in _RETRY_SQLSTATES:
        return True
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and args[0] in _RETRY_MYSQL_CODES:
        return True
    return "database is locked" in str(orig)


def retrying(db: Database, work: Callable[[Session], T], attempts: int = 5) -> T:
    """Run `work` in a transaction, again in a new one when the database aborted it as a deadlock victim."""
    for attempt in range(attempts):
        try:
            with db.transaction() as session:
                return work(session)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts - 1 or not is_retryable(exc):
                raise
            log.info("transaction aborted by the database (%s); running it again", exc.orig)
            time.sleep(0.005 * (attempt + 1))
    raise AssertionError("unreachable")


class Database:
    """One engine and session factory; `transaction()` is the only way code writes."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False, autoflush=True)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self, service: str, migrations: Path) -> None:
        """Bring `service`'s tables to the newest revision of its Alembic scripts."""
        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(migrations))
        cfg.attributes["version_table"] = f"alembic_version_{service}"
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def run_migrations(target_metadata: sa.MetaData) -> None:
    """Body of every service's Alembic `env.py`: migrate on the connection `Database.upgrade` passes."""
    from alembic import context

    cfg = context.config
    conn = cfg.attributes.get("connection")
    if conn is None:  # `alembic revision --autogenerate` run by a developer against a URL
        engine = make_engine(cfg.get_main_option("sqlalchemy.url") or "sqlite://")
        with engine.begin() as conn:
            _run(context, conn, target_metadata, cfg.attributes.get("version_table", "alembic_version"))
        return
    _run(context, conn, target_metadata, cfg.attributes["version_table"])


def _run(context: Any, conn: Any, target_metadata: sa.MetaData, version_table: str) -> None:
    context.configure(connection=conn, target_metadata=target_metadata, version_table=version_table,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
