"""Schema migrations: an empty database, one made by the first release's own code (checked out from git,
never copied by hand), and one a newer slackbot migrated; each on SQLite and on PostgreSQL (tests/db.py)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlmodel import SQLModel

from slackbot.store import SchemaTooNew, Store, migrations
from tests.db import Databases

REPO = Path(__file__).resolve().parents[1]
FIRST_RELEASE = "1604387"

# Runs inside the first release's checkout, with its own store and models.
FILL_OLD_DATABASE = """
import asyncio, sys
from pathlib import Path
import slackbot
from slackbot.store import Store
from slackbot.store.models import AgentThread, Task

assert Path(slackbot.__file__).resolve().is_relative_to(Path.cwd().resolve()), slackbot.__file__

def fill(s):
    thread = AgentThread(channel="C1", thread_ts="1.0", requester="U1", repo_url="https://example.invalid/r.git",
                         branch="slackbot/1", summary="old summary")
    s.add(thread)
    s.flush()
    s.add(Task(thread_id=thread.id, channel="C1", requester="U1", prompt="old prompt", status="done", answer="42"))
    s.add(Task(thread_id=thread.id, channel="C1", requester="U1", prompt="follow-up", status="failed", error="boom"))
    s.commit()

async def main():
    store = Store(sys.argv[1])
    await store.create_all()
    await store.run(fill)
    await store.aclose()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def first_release(tmp_path_factory) -> Path:
    """The first release's package, checked out from git."""
    root = tmp_path_factory.mktemp("first-release")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", FIRST_RELEASE, "slackbot"],
                             check=True, capture_output=True, timeout=60).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True, timeout=60)
    return root


def first_release_db(first_release: Path, databases: Databases) -> str:
    """A new database made and filled by the first release's code (its create_all, on either kind)."""
    url = databases.new("old")
    env = {**os.environ, "PYTHONPATH": str(first_release)}
    done = subprocess.run([sys.executable, "-c", FILL_OLD_DATABASE, url], cwd=first_release, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return url


def differences(url: str) -> list:
    """What autogenerate would change to make the database match the models (empty: nothing)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            # Server defaults are left out (alembic misreads SQLite's '' default); `snapshot` compares them.
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()


def snapshot(url: str) -> dict[str, dict]:
    """Tables as the database reports them: columns, keys, indexes, unique constraints."""
    engine = create_engine(url)
    try:
        db = inspect(engine)
        return {table: {
            "columns": [(c["name"], type_name(c["type"]), c["nullable"], c["default"]) for c in db.get_columns(table)],
            "primary key": db.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in db.get_indexes(table)),
            "unique": sorted(tuple(u["column_names"]) for u in db.get_unique_constraints(table)),
            "foreign keys": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                                    tuple(f["referred_columns"])) for f in db.get_foreign_keys(table)),
        } for table in db.get_table_names() if table != "alembic_version"}
    finally:
        engine.dispose()


def type_name(column_type) -> str:
    """str() of a reflected type leaves out the time zone of Postgres' timestamps: tell them apart."""
    return f"{column_type}{' WITH TIME ZONE' if getattr(column_type, 'timezone', False) else ''}"


def migrate_to(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            if revision == "base":
                command.downgrade(migrations.config(conn), revision)
            else:
                command.upgrade(migrations.config(conn), revision)
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(text(sql))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def cli_env(data_dir: Path, url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK", "OPENAI", "DATABASE_URL"))}
    env.update({"SLACKBOT_DATA_DIR": str(data_dir), "DATABASE_URL": url}, **extra)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "slackbot.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


async def test_an_empty_database_is_migrated_to_the_models(db_url):
    url = db_url
    store = Store(url)
    try:
        found = await store.upgrade()
        assert (found.current, found.head) == (None, migrations.head())
        assert differences(url) == []
        again = await store.upgrade()  # a no-op the second time
        assert again.at_head and again.current == migrations.head()
        thread, task = await store.new_task(channel="C1", thread_ts="1.0", requester="U1", requester_name="Ann",
                                            prompt="hi", mention_ts="1.0", model="m")
        assert (thread.repo_trusted, thread.tip_sha, task.announced) == (True, "", False)
    finally:
        await store.aclose()
    assert execute(url, "SELECT announced FROM task") == [(False,)]  # the code's default, not the server's


async def test_processes_starting_together_migrate_once(db_url):
    stores = [Store(db_url) for _ in range(3)]
    try:
        found = await asyncio.gather(*(store.upgrade() for store in stores))
    finally:
        for store in stores:
            await store.aclose()
    assert sorted((f.current or "") for f in found) == ["", migrations.head(), migrations.head()]
    assert differences(db_url) == []


def test_db_upgrade_and_current_of_an_empty_database(db_url, tmp_path):
    env = cli_env(tmp_path / "data", db_url)
    head = migrations.head()
    current = cli(env, "db", "current")
    assert (current.returncode, current.stdout) == (1, f"database: empty\ncode:     {head}\n"
                                                       "Upgrade needed: `slackbot db upgrade` (run and worker do it on "
                                                       "start).\n"), current.stderr
    upgraded = cli(env, "db", "upgrade")
    assert (upgraded.returncode, upgraded.stdout) == (0, f"Upgraded empty → {head}.\n"), upgraded.stderr
    current = cli(env, "db", "current")
    assert (current.returncode, current.stdout) == (0, f"database: {head}\ncode:     {head}\nUp to date.\n")
    assert differences(db_url) == []


def test_the_baseline_is_the_first_release_schema(first_release, databases):
    old = first_release_db(first_release, databases)
    url = databases.new("baseline")
    migrate_to(url, migrations.BASELINE)
    assert snapshot(url) == snapshot(old)
    # and the downgrades undo what they did
    migrate_to(url, "head")
    migrate_to(url, "base")
    assert snapshot(url) == {}


def test_db_upgrade_of_a_first_release_database(first_release, databases, tmp_path):
    url = first_release_db(first_release, databases)
    env = cli_env(tmp_path / "data", url)
    head = migrations.head()

    current = cli(env, "db", "current")
    assert current.returncode == 1, current
    assert "0001" in current.stdout and head in current.stdout and "Upgrade needed" in current.stdout

    upgraded = cli(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"0001 (first release, never stamped) → {head}" in upgraded.stdout
    assert differences(url) == []
    fresh = databases.new("fresh")
    migrate_to(fresh, "head")
    assert snapshot(url) == snapshot(fresh)  # server defaults included
    assert execute(url, "SELECT prompt, status, answer, error, announced FROM task ORDER BY id") == [
        ("old prompt", "done", "42", "", 1), ("follow-up", "failed", "", "boom", 1)]
    assert execute(url, "SELECT channel, summary, branch, base_sha, tip_sha, latest_base_sha, setup_hash, "
                        "repo_trusted FROM agent_thread") == [("C1", "old summary", "slackbot/1", "", "", "", "", 1)]

    current = cli(env, "db", "current")
    assert current.returncode == 0, current
    assert "Up to date" in current.stdout
    before = snapshot(url)
    again = cli(env, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert f"Already at {head}" in again.stdout
    assert snapshot(url) == before
    assert len(execute(url, "SELECT * FROM task")) == 2


async def test_a_database_from_a_newer_slackbot_is_refused(db_url, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    url = db_url
    migrate_to(url, "head")
    execute(url, "UPDATE alembic_version SET version_num = '0099_future'")
    before = snapshot(url)

    store = Store(url)
    try:
        with pytest.raises(SchemaTooNew) as refused:
            await store.upgrade()
    finally:
        await store.aclose()
    message = str(refused.value)
    assert "newer slackbot" in message and "0099_future" in message and migrations.head() in message
    assert snapshot(url) == before

    env = cli_env(data, url)
    current = cli(env, "db", "current")
    assert current.returncode == 2, current
    assert "0099_future" in current.stdout and "newer slackbot" in current.stderr
    upgraded = cli(env, "db", "upgrade")
    assert upgraded.returncode == 2 and "newer slackbot" in upgraded.stderr

    with socket.socket() as sock:  # a port nobody listens on: reaching Slack would fail differently
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    slack = {"SLACK_BOT_TOKEN": "xoxb-x", "SLACK_APP_TOKEN": "xapp-x",
             "SLACK_API_URL": f"http://127.0.0.1:{port}/api/"}
    for command_line in (["run", "--port", "0"], ["worker"]):
        started = cli(cli_env(data, url, **slack), *command_line)
        assert started.returncode != 0, started
        assert "upgraded by a newer slackbot (revision 0099_future)" in started.stderr, started.stderr
    assert execute(url, "SELECT version_num FROM alembic_version") == [("0099_future",)]
