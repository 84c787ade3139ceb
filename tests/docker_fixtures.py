"""Fixtures of the tests that need a real Docker engine and the real sandbox image.

Test modules import the fixtures they use (`from tests.docker_fixtures import engine, ...`), so the
module's own names win over conftest's `settings`. Without Docker these tests skip on a laptop and
fail under CI=true. Build the image first (CI does): `bash ci/base-image.sh` then
`slackbot sandbox build --base slackbot-base:bookworm`.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import docker
import pytest

from slackbot.sandbox import DockerSandboxes
from slackbot.sandbox.docker import task_of
from slackbot.settings import Settings

IMAGE = os.environ.get("SLACKBOT_TEST_IMAGE", "slackbot-sandbox:latest")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Docker sandbox tests need Docker and {IMAGE}: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    try:
        client = docker.from_env(timeout=30)
        client.ping()
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        _unavailable(f"image {IMAGE} is missing (run `slackbot sandbox build --base slackbot-base:bookworm`)")
    except Exception as exc:  # no engine at all
        _unavailable(f"Docker is not reachable: {exc}")
    return client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings pointing at a temporary data directory (nothing read from a .env file)."""
    return Settings(data_dir=tmp_path / "data", sandbox_image=IMAGE, docker_timeout_s=30,
                    sandbox_memory="512m", sandbox_cpus=1.0, sandbox_pids=256)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A workspace directory the sandbox user (uid 1000) can write, as WorkspaceDisks makes them."""
    path = tmp_path / "workspace"
    path.mkdir()
    (path / "README.md").write_text("hello from the host\n")
    chown_sandbox(path)
    return path


def chown_sandbox(path: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "1000:1000", str(path)], check=True)
    else:
        subprocess.run(["chmod", "-R", "a+rwX", str(path)], check=True)


@pytest.fixture
async def sandboxes(engine, settings):
    provider = DockerSandboxes(settings, instance=f"test-{secrets.token_hex(3)}")
    try:
        yield provider
    finally:
        try:
            await provider.reap()
        finally:
            await provider.aclose()


def containers_of(engine: docker.DockerClient, instance: str, task_id: int | None = None) -> list[dict]:
    """Every container, running or not, labelled with `instance` (and of `task_id`; see task_view)."""
    found = engine.api.containers(all=True, filters={"label": ["slackbot.managed=1", f"slackbot.instance={instance}"]})
    return [c for c in task_view(found) if task_id is None or c["Labels"].get("slackbot.task") == str(task_id)]


def task_view(containers: list[dict]) -> list[dict]:
    """Containers as tasks own them: a warm container handed to a task shows as that task's agent
    container (its labels were set before it had a task); one still waiting in the pool is left out."""
    seen = []
    for c in containers:
        labels = c.get("Labels") or {}
        if labels.get("slackbot.role") == "pool":
            task = task_of(c)
            if not task:
                continue
            c = {**c, "Labels": {**labels, "slackbot.task": str(task), "slackbot.role": "agent"}}
        seen.append(c)
    return seen


def networks_of(engine: docker.DockerClient, instance: str, task_id: int | None = None) -> list[dict]:
    labels = ["slackbot.managed=1", f"slackbot.instance={instance}"]
    if task_id is not None:
        labels.append(f"slackbot.task={task_id}")
    return engine.api.networks(filters={"label": labels})


def exists(engine: docker.DockerClient, container_id: str) -> bool:
    try:
        engine.api.inspect_container(container_id)
        return True
    except docker.errors.NotFound:
        return False
