"""Host git for tests: remotes to mirror, and result bundles made the way the finishing step makes them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from slackbot.repos import GitRunner
from slackbot.repos.results import RESULT_HEAD

PERSON = {"GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
          "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}


def git(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], check=False, cwd=cwd, env={**os.environ, **PERSON}, capture_output=True,
                          input=stdin)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode(errors="replace").strip()


def make_remote(bare: Path, work: Path, *, default: str = "main") -> Path:
    """A bare repository with `default` (README.md) and release-2 (plus release.txt)."""
    if not (bare / "HEAD").exists():
        git("init", "--quiet", "--bare", f"--initial-branch={default}", str(bare))
    git("init", "--quiet", f"--initial-branch={default}", str(work))
    (work / "README.md").write_text("hello\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    git("checkout", "--quiet", "-b", "release-2", cwd=work)
    (work / "release.txt").write_text("release two\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "release", cwd=work)
    git("push", "--quiet", str(bare), f"{default}:{default}", "release-2:release-2", cwd=work)
    git("checkout", "--quiet", default, cwd=work)
    return bare


def add_commit(work: Path, bare: Path, name: str, branch: str = "main") -> str:
    git("checkout", "--quiet", branch, cwd=work)
    (work / name).write_text(name + "\n")
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", f"add {name}", cwd=work)
    git("push", "--quiet", str(bare), f"{branch}:{branch}", cwd=work)
    return git("rev-parse", "HEAD", cwd=work)


def result_bundle(repo: Path, parent: str | None, files: dict[str, str | bytes | None], dest: Path, *,
                  refs: tuple[str, ...] = (RESULT_HEAD,), borrow: bool = True) -> str:
    """A bundle like the finishing step's: one commit on `parent` (None: a root commit) with `files` written
    (None deletes), carrying `refs` without what `parent` reaches. With `borrow`, the objects of `repo` are
    reachable through alternates (as the finishing step borrows the workspace's). Returns the commit."""
    work = dest.with_name(dest.name + ".work")
    git("init", "--quiet", str(work))
    if borrow:
        (work / ".git" / "objects" / "info" / "alternates").write_text(f"{repo / 'objects'}\n")
    if parent:
        git("checkout", "--quiet", "--detach", parent, cwd=work)
    for name, content in files.items():
        path = work / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "--allow-empty", "-m", "the task's change", cwd=work)
    commit = git("rev-parse", "HEAD", cwd=work)
    for ref in refs:
        git("update-ref", ref, commit, cwd=work)
    git("bundle", "create", "-q", str(dest), *refs, *([f"^{parent}"] if parent else []), cwd=work)
    return commit


@pytest.fixture
async def runner():
    r = GitRunner(timeout_s=30)
    yield r
    r.close()
