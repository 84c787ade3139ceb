"""Shared fixtures: the fakes over real HTTP, settings pointing at them, and the real bot."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

from slackbot.app import Bot
from slackbot.settings import Settings
from tests.db import databases, db_url  # noqa: F401  (fixtures: fresh databases on SQLite and PostgreSQL)
from tests.fakes import FakeSlack, ScriptedModel

SANDBOX_IMAGE = os.environ.get("SLACKBOT_TEST_IMAGE", "slackbot-sandbox:latest")
TEST_OPENAI_KEY = "sk-test-secret-key-0123456789"


# ---- tests marked `docker` ---------------------------------------------------------------------

@functools.cache
def docker_missing() -> str:
    """Why no Docker engine answers, "" when one does; asked once per run."""
    try:
        client = docker.from_env(timeout=5)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # no socket, a refused connection, a timeout, a bad DOCKER_HOST
        return f"no Docker engine answers ({exc.__class__.__name__}: {exc})"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without an engine, `docker` tests are skipped with the reason, except under CI, where the run
    fails at once: CI never passes by leaving the sandbox out."""
    needing = [item for item in items if item.get_closest_marker("docker")]
    reason = docker_missing() if needing else ""
    if not reason:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"{len(needing)} tests need Docker and CI is set, but {reason}.")
    for item in needing:
        item.add_marker(pytest.mark.skip(reason=f"needs Docker: {reason}"))


@pytest.fixture(autouse=True)
def _unmount_leftovers(request: pytest.FixtureRequest):
    """Workspaces of processes a test killed with -9 stay loop-mounted under its temporary folder
    (the bot unmounts only what it mounted itself): detached after the test, so folders can go."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    root = str(request.getfixturevalue("tmp_path"))  # asked for first: torn down after this fixture
    yield
    try:
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts if line.split()[1].startswith(root + "/")]
    except OSError:
        return
    for point in sorted(points, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)


@pytest.fixture
async def slack():
    fake = FakeSlack()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def model():
    fake = ScriptedModel()
    await fake.start()
    yield fake
    await fake.stop()


def make_settings(data_dir: Path, slack: FakeSlack, model: ScriptedModel, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "SLACK_API_URL": slack.api_url,
        "OPENAI_BASE_URL": model.base_url,
        "OPENAI_API_KEY": TEST_OPENAI_KEY,
        "SLACKBOT_MODEL": "test-model",
        "SLACKBOT_DATA_DIR": str(data_dir),
        "SLACKBOT_SANDBOX_IMAGE": SANDBOX_IMAGE,
        "SLACKBOT_SANDBOX_MEMORY": "512m",
        "SLACKBOT_SANDBOX_CPUS": 1.0,
        # Each workspace must fit the disk at its quota when its task starts: keep tests small.
        "SLACKBOT_WORKSPACE_QUOTA": "1g",
        "SLACKBOT_DISK_RESERVE": "256m",
    }
    values.update(extra)
    return Settings(**values)


@pytest.fixture
def settings(tmp_path, slack, model) -> Settings:
    return make_settings(tmp_path / "data", slack, model)


@pytest.fixture
async def bot(settings):
    """The real bot in Socket Mode against the fakes."""
    async with Bot(settings, port=0) as running:
        yield running
