"""Shared fixtures: the fakes over real HTTP, settings pointing at them, and the real bot."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from slackbot.app import Bot
from slackbot.settings import Settings
from tests.fakes import FakeSlack, ScriptedModel

SANDBOX_IMAGE = os.environ.get("SLACKBOT_TEST_IMAGE", "slackbot-sandbox:latest")
TEST_OPENAI_KEY = "sk-test-secret-key-0123456789"


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
