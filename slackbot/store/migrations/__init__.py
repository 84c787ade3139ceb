"""Schema migrations (Alembic, configured here in code; the scripts are in versions/).

Every process that opens the database calls `upgrade` first. It takes a write lock, so processes
starting together migrate one after the other: the second finds the schema at head.

A new revision: add versions/NNNN_what.py with `down_revision` the current head (drafting it with
`alembic.command.revision(config(connection), message, autogenerate=True, rev_id="NNNN")` against a
database at head is a start; read what it wrote before keeping it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

# Before importing alembic, which logs at INFO on import and on every connection: chatter.
logging.getLogger("alembic").setLevel(logging.WARNING)

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import Connection, Engine, inspect, text  # noqa: E402

log = logging.getLogger(__name__)

BASELINE = "0001"  # the schema the first release made with create_all, before migrations existed
_HERE = Path(__file__).parent
_PG_LOCK_KEY = 0x51AC_B07  # any constant shared by every slackbot process


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer slackbot; this code must not touch it."""

    def __init__(self, found: str, head: str) -> None:
        super().__init__(f"the database was upgraded by a newer slackbot (revision {found}); the newest this "
                         f"code knows is {head}: run the newer slackbot, or restore a backup of the database")
        self.found = found
        self.head = head


@dataclass(frozen=True)
class SchemaState:
    current: str | None  # None: no schema at all (an empty database)
    head: str
    known: bool  # False: a revision this code has never heard of (a newer slackbot's)
    unversioned: bool = False  # tables of the first release, never stamped

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def config(connection: Connection) -> Config:
    """An Alembic config without alembic.ini, running on `connection` (see env.py)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    newest = _scripts().get_current_head()
    assert newest is not None  # the package ships its migrations
    return newest


def state(connection: Connection) -> SchemaState:
    found = MigrationContext.configure(connection).get_current_revision()
    newest = head()
    if found is None:
        old = inspect(connection).has_table("agent_thread")
        return SchemaState(BASELINE if old else None, newest, known=True, unversioned=old)
    return SchemaState(found, newest, known=found in _revisions())


def upgrade(engine: Engine) -> SchemaState:
    """Brings the schema to head in one transaction; returns what it found. Raises SchemaTooNew.

    Empty: every revision runs. First-release tables without a revision: stamped BASELINE, then
    upgraded. A known revision: upgraded from there. An unknown one: refused."""
    with engine.begin() as connection:
        _lock(connection)
        before = state(connection)
        if not before.known:
            raise SchemaTooNew(before.current or "", before.head)
        if before.unversioned:
            MigrationContext.configure(connection).stamp(_scripts(), BASELINE)
        if not before.at_head:
            command.upgrade(config(connection), "head")
            log.info("database schema upgraded from %s to %s", before.current or "empty", before.head)
        return before


def _lock(connection: Connection) -> None:
    """Held until the transaction ends, so concurrent starts never migrate twice."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # the pysqlite driver has not begun one yet
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(_HERE))


def _revisions() -> set[str]:
    return {script.revision for script in _scripts().walk_revisions()}
