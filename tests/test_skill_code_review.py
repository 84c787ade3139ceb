"""The built-in code-review skill: its SKILL.md passes the strict check, and scripts/review_diff.py
summarises real git repositories (uncommitted work, a branch against its base) as text and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from slackbot.agent.skills import check_dir, parse_skill

REPO_ROOT = Path(__file__).resolve().parent.parent
SKILL = REPO_ROOT / "skills" / "code-review"
SCRIPT = SKILL / "scripts" / "review_diff.py"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"  # split so no scanner takes this file for a leak
GITHUB_TOKEN = "gh" + "p_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK_TOKEN = "xo" + "xb-" + "1234567890-abcdefghij"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Git with no system or user configuration but ours, and a fixed author."""
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": os.environ["PATH"], "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C",
            "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
            "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com"}


def git(repo: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def write(repo: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())


def commit(repo: Path, env: dict[str, str], message: str, files: dict[str, str | bytes]) -> None:
    write(repo, files)
    git(repo, env, "add", "-A")
    git(repo, env, "commit", "-q", "-m", message)


def new_repo(path: Path, env: dict[str, str]) -> Path:
    path.mkdir()
    git(path, env, "init", "-q", "-b", "main")
    commit(path, env, "first", {"src/app.py": "def main():\n    return 1\n", "README.md": "# App\n",
                                "merge.txt": "one\n"})
    return path


def review(repo: Path, env: dict[str, str], *args: str, code: int = 0) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=repo, env=env, capture_output=True, text=True)
    assert done.returncode == code, done.stderr
    return done.stdout if code == 0 else done.stderr


def lines(text: str) -> list[str]:
    return text.splitlines()


# ---- the skill folder ---------------------------------------------------------------------------

def test_skill_passes_the_strict_check():
    problems = [p for p in check_dir(REPO_ROOT / "skills") if Path(p.path).name == "code-review"]
    assert problems == []
    skill = parse_skill(SKILL, "built-in", strict=True)
    assert skill.name == "code-review" and skill.folders == ("scripts",) and skill.warnings == ()
    assert "python3 <skill folder>/scripts/review_diff.py" in skill.body


def test_help_says_what_it_reads(env, tmp_path):
    out = review(tmp_path, env, "--help")
    assert out.startswith("usage: review_diff.py [-h] [--base [REF]] [--json]")
    assert "staged and unstaged changes against HEAD" in out


# ---- uncommitted work -----------------------------------------------------------------------------

def test_uncommitted_work_is_summarised_with_file_and_line(env, tmp_path):
    repo = new_repo(tmp_path / "repo", env)
    write(repo, {"src/app.py": "def main():\n    # TODO: handle errors\n    print(main)\n    return 1\n",
                 "README.md": "# App\n\nRun `print(1)` to see.\n"})  # unstaged; a print( in docs is no leftover
    write(repo, {"web/app.js": "console.log('x');\ndebugger;\n// FIXME later\n"})
    git(repo, env, "add", "web/app.js")  # staged
    write(repo, {"notes/new.txt": "a\nXXX b\n"})  # untracked
    out = lines(review(repo, env))
    assert out[:6] == [
        "Reviewing: uncommitted changes (staged, unstaged and untracked) against HEAD",
        "Files changed: 4 (+9 -0)",
        "  M README.md  +2 -0",
        "  M src/app.py  +2 -0",
        "  A web/app.js  +3 -0",
        "  A notes/new.txt  +2 -0  (untracked)",
    ]
    assert out[out.index("TODO/FIXME/XXX added: 3") + 1:][:3] == [
        "  src/app.py:2  # TODO: handle errors", "  web/app.js:3  // FIXME later", "  notes/new.txt:2  XXX b"]
    assert out[out.index("Debug leftovers added: 3") + 1:][:3] == [
        "  src/app.py:3  [print(] print(main)", "  web/app.js:1  [console.log] console.log('x');",
        "  web/app.js:2  [debugger] debugger;"]
    assert "Possible secrets added (values masked): none" in out
    assert out[-2:] == ["Tests: 2 source files and 0 test files changed",
                        "Warning: source changed without tests (2 source files changed, no test file): "
                        "src/app.py, web/app.js"]


def test_secrets_are_found_and_masked(env, tmp_path):
    repo = new_repo(tmp_path / "repo", env)
    write(repo, {"config.py": f'AWS_KEY = "{AWS_KEY}"\npassword = "hunter2hunter2"\n'
                              f'GH = "{GITHUB_TOKEN}"  # TODO rotate {SLACK_TOKEN}\n'
                              "-----BEGIN RSA PRIVATE KEY-----\n"})
    text, data = review(repo, env), json.loads(review(repo, env, "--json"))
    out = lines(text)
    assert out[out.index("Possible secrets added (values masked): 5") + 1:][:5] == [
        "  config.py:1  AWS access key id: AKIA********",
        "  config.py:2  hard-coded credential: hu********",
        "  config.py:3  GitHub token: ghp_********",
        "  config.py:3  Slack token: xoxb********",
        "  config.py:4  private key: -----BEGIN RSA PRIVATE KEY-----",
    ]
    assert "  config.py:3  GH = \"ghp_********\"  # TODO rotate xoxb********" in out  # a shown line is masked too
    assert [s["kind"] for s in data["secrets"]] == ["AWS access key id", "hard-coded credential", "GitHub token",
                                                    "Slack token", "private key"]
    for secret in (AWS_KEY, "hunter2hunter2", GITHUB_TOKEN, SLACK_TOKEN):
        assert secret not in text and secret not in json.dumps(data)


def test_conflict_markers_long_lines_and_large_files(env, tmp_path):
    repo = new_repo(tmp_path / "repo", env)
    write(repo, {"merge.txt": "<<<<<<< HEAD\none\n=======\ntwo\n>>>>>>> topic\n",
                 "docs/setext.md": "Title\n=======\n",  # a heading underline alone is no conflict
                 "wide.py": "x = 1\ny = '" + "a" * 250 + "'\n",
                 "blob.bin": b"\0" * (1024 * 1024 + 1)})
    out = lines(review(repo, env))
    assert "  A blob.bin  binary  (untracked)" in out
    assert out[out.index("Added files over 1 MB: 1") + 1] == "  blob.bin  1.0 MB"
    assert out[out.index("Added lines over 200 characters: 1") + 1] == "  wide.py:2  256 characters"
    assert out[out.index("Conflict markers: 1") + 1] == "  merge.txt  lines 1, 3, 5"


def test_json_shape(env, tmp_path):
    repo = new_repo(tmp_path / "repo", env)
    git(repo, env, "mv", "src/app.py", "src/main.py")
    write(repo, {"src/main.py": "def main():\n    return 1\n# TODO: more\n",
                 "tests/test_main.py": "def test(): pass\n"})
    git(repo, env, "add", "-A")
    data = json.loads(review(repo, env, "--json"))
    assert set(data) == {"range", "files", "totals", "todos", "debug", "secrets", "large_files", "long_lines",
                         "conflicts", "tests"}
    assert data["range"] == {"mode": "worktree", "base": git(repo, env, "rev-parse", "HEAD"), "head": None,
                             "description": "uncommitted changes (staged, unstaged and untracked) against HEAD"}
    assert data["files"] == [
        {"path": "src/main.py", "old_path": "src/app.py", "status": "R", "added": 1, "deleted": 0, "binary": False,
         "untracked": False, "test": False, "source": True},
        {"path": "tests/test_main.py", "old_path": None, "status": "A", "added": 1, "deleted": 0, "binary": False,
         "untracked": False, "test": True, "source": False},
    ]
    assert data["totals"] == {"files": 2, "added": 2, "deleted": 0}
    assert data["todos"] == [{"file": "src/main.py", "line": 3, "text": "# TODO: more"}]
    assert data["tests"] == {"source_files": ["src/main.py"], "test_files": ["tests/test_main.py"], "warning": None}


# ---- a branch against its base --------------------------------------------------------------------

def branch_with_remote(tmp_path: Path, env: dict[str, str]) -> tuple[Path, str]:
    """A clone of a bare remote whose main moved on after `feature` branched off; returns the clone and
    the merge base."""
    origin = new_repo(tmp_path / "origin-work", env)
    git(tmp_path, env, "clone", "-q", "--bare", str(origin), str(tmp_path / "origin.git"))
    git(tmp_path, env, "clone", "-q", str(tmp_path / "origin.git"), str(tmp_path / "clone"))
    clone = tmp_path / "clone"
    fork = git(clone, env, "rev-parse", "HEAD")
    commit(origin, env, "main moves on", {"later.py": "print('main')\n"})
    git(origin, env, "push", "-q", str(tmp_path / "origin.git"), "main")
    git(clone, env, "fetch", "-q")
    git(clone, env, "checkout", "-q", "-b", "feature")
    commit(clone, env, "feature", {"src/app.py": "def main():\n    return 2  # FIXME\n",
                                   "tests/test_app.py": "def test_main(): pass\n",
                                   "data/big.csv": "x" * (2 * 1024 * 1024) + "\n"})
    write(clone, {"scratch.py": "print('not committed')\n"})  # --base reads commits only
    return clone, fork


def test_base_reads_the_commits_since_the_merge_base(env, tmp_path):
    clone, fork = branch_with_remote(tmp_path, env)
    data = json.loads(review(clone, env, "--base", "origin/main", "--json"))
    assert data["range"]["mode"] == "base" and data["range"]["merge_base"] == fork
    assert data["range"]["description"] == f"HEAD against origin/main (merge base {fork[:10]})"
    assert [f["path"] for f in data["files"]] == ["data/big.csv", "src/app.py", "tests/test_app.py"]  # no later.py
    assert data["todos"] == [{"file": "src/app.py", "line": 2, "text": "return 2  # FIXME"}]
    assert data["large_files"] == [{"file": "data/big.csv", "bytes": 2 * 1024 * 1024 + 1}]
    assert data["tests"]["warning"] is None


def test_base_alone_and_a_clean_tree_use_the_remote_default_branch(env, tmp_path):
    clone, fork = branch_with_remote(tmp_path, env)
    out = lines(review(clone, env, "--base"))
    assert out[:2] == [f"Reviewing: HEAD against origin/main (merge base {fork[:10]})", "Files changed: 3 (+3 -1)"]
    (clone / "scratch.py").unlink()
    assert lines(review(clone, env))[0] == \
        f"Reviewing: no uncommitted changes, so HEAD against origin/main (merge base {fork[:10]})"


def test_an_unknown_base_is_an_error(env, tmp_path):
    repo = new_repo(tmp_path / "repo", env)
    assert review(repo, env, "--base", "nope", code=2) == "review_diff.py: unknown base ref 'nope'\n"
