"""The built-in release-notes skill: its SKILL.md passes the strict check, and
scripts/release_notes.py turns the log of a real git repository into Markdown notes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slackbot.agent.skills import check_dir, parse_skill

REPO_ROOT = Path(__file__).resolve().parent.parent
SKILL = REPO_ROOT / "skills" / "release-notes"
SCRIPT = SKILL / "scripts" / "release_notes.py"


class Repo:
    """A git repository in a temporary folder, with no system or user configuration but its own, whose
    commits are one second apart (so the log's order never depends on the clock)."""

    def __init__(self, path: Path, home: Path) -> None:
        path.mkdir()
        home.mkdir()
        self.path, self.time = path, 1_700_000_000
        self.env = {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, author: str = "Ada") -> str:
        email = f"{author.split()[0].lower()}@example.com"
        env = {**self.env, "GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": "CI",
               "GIT_COMMITTER_EMAIL": "ci@example.com", "GIT_AUTHOR_DATE": f"@{self.time} +0000",
               "GIT_COMMITTER_DATE": f"@{self.time} +0000"}
        done = subprocess.run(["git", *args], cwd=self.path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def commit(self, message: str, author: str = "Ada") -> str:
        """A commit changing one file; returns its short hash."""
        self.time += 1
        with (self.path / "log.txt").open("a") as f:
            f.write(message + "\n")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, author=author)
        return self.git("rev-parse", "--short", "HEAD")

    def notes(self, *args: str, code: int = 0) -> str:
        done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=self.path, env=self.env,
                              capture_output=True, text=True)
        assert done.returncode == code, done.stderr
        return done.stdout if code == 0 else done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo", tmp_path / "home")


def release(repo: Repo) -> dict[str, str]:
    """v1.0.0 on a first commit, then a release's worth of commits; returns their short hashes."""
    h = {"init": repo.commit("chore: initial commit")}
    repo.git("tag", "v1.0.0")
    h["feat"] = repo.commit("feat(api): add pagination", author="Ada Lovelace")
    h["fix"] = repo.commit("fix: handle empty input", author="Bob")
    h["bang"] = repo.commit("feat(cli)!: rename --out to --output", author="cy")
    h["footer"] = repo.commit("refactor(parser): split the parser\n\nLong explanation.\n\n"
                              "BREAKING CHANGE: parse() now returns a list\n  of documents.", author="Bob")
    h["perf"] = repo.commit("perf: cache lookups", author="Ada Lovelace")
    h["docs"] = repo.commit("docs(readme): explain the config file")
    h["test"] = repo.commit("test: cover the parser")
    h["ci"] = repo.commit("ci: run on Python 3.12")
    h["build"] = repo.commit("build(deps): pin yaml")
    h["chore"] = repo.commit("chore: tidy up")
    h["plain"] = repo.commit("Update README", author="Bob")
    return h


# ---- the skill folder ---------------------------------------------------------------------------

def test_skill_passes_the_strict_check():
    problems = [p for p in check_dir(REPO_ROOT / "skills") if Path(p.path).name == "release-notes"]
    assert problems == []
    skill = parse_skill(SKILL, "built-in", strict=True)
    assert skill.name == "release-notes" and skill.folders == ("scripts",) and skill.warnings == ()
    assert "python3 <skill folder>/scripts/release_notes.py" in skill.body


def test_help(repo):
    out = repo.notes("--help")
    assert out.startswith("usage: release_notes.py [-h] [--merges] [--title TITLE] [FROM] [TO]")


# ---- the notes ------------------------------------------------------------------------------------

def test_notes_since_the_latest_tag(repo):
    h = release(repo)
    assert repo.notes() == f"""# Changes in v1.0.0..HEAD

## Breaking changes

- **parser:** split the parser ({h['footer']})
  - parse() now returns a list of documents.
- **cli:** rename --out to --output ({h['bang']})

## Features

- **api:** add pagination ({h['feat']})

## Fixes

- handle empty input ({h['fix']})

## Performance

- cache lookups ({h['perf']})

## Documentation

- **readme:** explain the config file ({h['docs']})

## Tests

- cover the parser ({h['test']})

## Build

- **deps:** pin yaml ({h['build']})
- run on Python 3.12 ({h['ci']})

## Other changes

- Update README ({h['plain']})
- tidy up ({h['chore']})

## Contributors

- Ada
- Ada Lovelace
- Bob
- cy
"""


def test_from_and_to(repo):
    h = release(repo)
    repo.git("tag", "-a", "-m", "release", "v1.1.0")  # a tag on TO itself is not FROM
    first = repo.notes().splitlines()
    assert first[0] == "# Changes in v1.0.0..HEAD" and f"- tidy up ({h['chore']})" in first
    assert repo.notes("v1.0.0", h["fix"], "--title", "v1.0.1") == f"""# v1.0.1

## Features

- **api:** add pagination ({h['feat']})

## Fixes

- handle empty input ({h['fix']})

## Contributors

- Ada Lovelace
- Bob
"""
    after = repo.commit("fix: after the release")
    assert repo.notes().splitlines()[:5] == ["# Changes in v1.1.0..HEAD", "", "## Fixes", "",
                                             f"- after the release ({after})"]


def test_without_tags_the_notes_start_at_the_root_commit(repo):
    root = repo.commit("Initial import")
    feat = repo.commit("feat: first feature")
    assert repo.notes() == f"""# Changes in HEAD (since the first commit)

## Features

- first feature ({feat})

## Other changes

- Initial import ({root})

## Contributors

- Ada
"""


def test_merges_only_with_the_flag(repo):
    repo.commit("feat: base")
    repo.git("tag", "v1")
    repo.git("checkout", "-q", "-b", "topic")
    topic = repo.commit("fix(ui): on a branch")
    repo.git("checkout", "-q", "main")
    repo.time += 1
    repo.git("merge", "-q", "--no-ff", "-m", "Merge branch 'topic'", "topic")
    merge = repo.git("rev-parse", "--short", "HEAD")
    assert f"({merge})" not in repo.notes()
    assert repo.notes("--merges").splitlines()[4:11] == [
        f"- **ui:** on a branch ({topic})", "", "## Other changes", "", f"- Merge branch 'topic' ({merge})", "",
        "## Contributors"]


def test_an_empty_range_and_an_unknown_ref(repo):
    repo.commit("feat: one")
    repo.git("tag", "v1")
    assert repo.notes("v1") == "No commits in v1..HEAD (merge commits left out).\n"
    assert repo.notes("v0", code=2) == "release_notes.py: 'v0' is not a commit, branch or tag here\n"
