"""Fresh, empty databases for a test, on SQLite and on PostgreSQL: the fixtures `databases` (a
maker of more) and `db_url` (one), parametrised `sqlite` and `postgres`.

PostgreSQL needs a server: `SLACKBOT_TEST_PG` is a URL to it as a role that may create databases,
e.g. `postgresql+psycopg://postgres@/postgres?host=/var/run/postgresql` after
`bash ci/postgres-up.sh`. Each test gets databases `slackbot_test_<random>` on it, dropped
afterwards (connections left open are terminated). Unset, the postgres cases are skipped, except
under CI, where they fail: CI never silently leaves PostgreSQL out.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

PG_ENV = "SLACKBOT_TEST_PG"
KINDS = ("sqlite", "postgres")


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


class Databases:
    """Makes empty databases of one kind for one test; `close` removes them."""

    def __init__(self, kind: str, tmp_path: Path, server: str | None) -> None:
        self.kind = kind
        self._dir = tmp_path
        self._server = server
        self._admin: Engine | None = None
        self._made: list[str] = []

    def new(self, name: str = "slackbot") -> str:
        """The URL of a new empty database (`name` tells the SQLite file or the Postgres database)."""
        if self.kind == "sqlite":
            path = self._dir / f"{name}-{len(self._made)}.db"
            self._made.append(str(path))
            return f"sqlite:///{path}"
        assert self._server is not None
        database = f"slackbot_test_{name}_{secrets.token_hex(4)}"
        with self._engine().connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{database}"'))
        self._made.append(database)
        return make_url(self._server).set(database=database).render_as_string(hide_password=False)

    def close(self) -> None:
        if self._admin is None:
            return
        try:
            with self._admin.connect() as conn:
                for database in self._made:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        finally:
            self._admin.dispose()

    def _engine(self) -> Engine:
        if self._admin is None:  # CREATE and DROP DATABASE cannot run inside a transaction
            self._admin = create_engine(self._server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        return self._admin


def postgres_server() -> str:
    """SLACKBOT_TEST_PG, or a skip (a failure under CI) when it is unset."""
    server = os.environ.get(PG_ENV, "")
    if server:
        return server
    reason = f"PostgreSQL: {PG_ENV} is not set (run `bash ci/postgres-up.sh` and set it; see tests/db.py)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{reason}; under CI the PostgreSQL cases must run", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(params=KINDS)
def databases(request, tmp_path) -> Iterator[Databases]:
    server = postgres_server() if request.param == "postgres" else None
    made = Databases(request.param, tmp_path, server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def db_url(databases: Databases) -> str:
    """A fresh empty database: a file under tmp_path, or a new database on the Postgres server."""
    return databases.new()
