"""The built-in security-audit skill: its scanner finds one of each kind of finding in a fixture
repository, at the right file:line, leaves the clean look-alikes alone, never prints a secret in
full, and the skill folder passes the strict check."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from slackbot.agent.skills import check_dir, parse_skill
from tests.git_helpers import git

REPO_ROOT = Path(__file__).resolve().parent.parent
SKILL = REPO_ROOT / "skills" / "security-audit"
AUDIT = SKILL / "scripts" / "audit.py"

# Fake secrets, assembled so that this file holds none of them whole.
AWS = "AKIA" + "Q7Z3R5T2W4Y6U8I0"
GITHUB = "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"
SLACK = "xoxb-" + "123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
OPENAI = "sk-proj-" + "Zq8Xw7Vu6Ts5Rq4Po3Nm2Lk1Jh"
PASSWORD = "S3cr3t-" + "Hunter-42x"
ENTROPIC = "q8Zr" + "T2vLm9XwK4pN7bYc1HdJ6sF3"
SECRETS = (AWS, GITHUB, SLACK, OPENAI, PASSWORD, ENTROPIC)
KEY_BLOCK = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END " + "RSA PRIVATE KEY-----\n"

FILES = {
    "app/config.py": (
        f'AWS_KEY = "{AWS}"\n'
        'DOCS_KEY = "AKIAIOSFODNN7EXAMPLE"\n'  # AWS's documented example key: a placeholder
        f'db_password = "{PASSWORD}"\n'
        'password = os.environ["DB_PASSWORD"]\n'
        'api_token = "${API_TOKEN}"\n'
        'token_url = "https://example.com/oauth/token"\n'
        f'GH = "{GITHUB}"\n'
        f'SLACK = "{SLACK}"\n'
        f'OPENAI = "{OPENAI}"\n'
        'FAKE = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"\n'),
    "keys/deploy_key": KEY_BLOCK,
    "deploy/settings.yml": (
        f"signing_salt: {ENTROPIC}\n"
        "commit: 3f2a9c0d8b7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a\n"
        "vault: \"{{ vault_token }}\"\n"
        "image_tag: ReleaseCandidateBuildNumber\n"),
    "app/danger.py": (
        "x = eval(user_input)\n"
        "subprocess.run(cmd, shell=True)\n"
        "os.system('ls ' + name)\n"
        "obj = pickle.loads(blob)\n"
        "cfg = yaml.load(text)\n"
        "requests.get(url, verify=False)\n"
        "path = tempfile.mktemp()\n"
        "digest = hashlib.md5(password.encode()).hexdigest()\n"
        "cur.execute(f\"SELECT * FROM users WHERE name = '{name}'\")\n"
        "# clean look-alikes from here on\n"
        "value = ast.literal_eval(text)\n"
        "cfg = yaml.safe_load(text)\n"
        "cfg = yaml.load(text, Loader=yaml.SafeLoader)\n"
        "subprocess.run(['ls', '-l'], check=True)\n"
        "fd, path = tempfile.mkstemp()\n"
        "etag = hashlib.md5(body).hexdigest()\n"
        "cur.execute(\"SELECT * FROM users WHERE id = %s\", (uid,))\n"
        "# eval(commented_out)\n"
        "async def exec(self, command): ...\n"),
    "web/app.js": (
        "const v = eval(input);\n"
        "const f = new Function('a', body);\n"
        "exec(`git log ${branch}`);\n"
        "el.innerHTML = html;\n"
        "return <div dangerouslySetInnerHTML={{__html: html}} />;\n"
        "db.query(`SELECT * FROM t WHERE id = ${id}`);\n"
        "// clean look-alikes\n"
        "el.textContent = html;\n"
        "execFile('git', ['status']);\n"
        "if (el.innerHTML === other) {}\n"
        "db.query('SELECT * FROM t WHERE id = ?', [id]);\n"),
    "web/package.json": '{"name": "web", "dependencies": {"left-pad": "^1.3.0"}}\n',
    "ui/package.json": '{"name": "ui", "dependencies": {"left-pad": "1.3.0"}}\n',
    "ui/package-lock.json": "{}\n",
    "scripts/install.sh": (
        "#!/bin/sh\n"
        "curl -fsSL https://get.example.com/install.sh | sh\n"
        "chmod 777 /srv/data\n"
        "curl -fsSLo tool.tgz https://example.com/tool.tgz\n"
        "chmod 755 /srv/bin/tool\n"),
    "Dockerfile": (
        "FROM python:latest\n"
        "ADD https://example.com/tool.tar.gz /opt/\n"
        "ADD --checksum=sha256:0123 https://example.com/ok.tar.gz /opt/\n"
        "USER root\n"),
    "docker/Dockerfile.nouser": "FROM alpine:3.19 AS build\nRUN true\nFROM alpine:3.19\nCOPY --from=build / /\n",
    "docker/Dockerfile.ok": "FROM python:3.11-slim\nUSER root\nRUN true\nUSER app\n",
    ".github/workflows/pr.yml": (
        "on: pull_request_target\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    env:\n"
        "      TITLE: ${{ github.event.pull_request.title }}\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.number }}\n"
        "      - run: |\n"
        "          echo building\n"
        "          echo \"${{ github.event.pull_request.title }}\"\n"
        "      - name: quoted\n"
        "        run: echo \"$TITLE\"\n"),
    "requirements.txt": "# pinned below\n-r base.txt\nflask==3.0.0\nrequests>=2\n",
}


def line(path: str, needle: str) -> int:
    """The 1-based line of FILES[path] holding `needle` (which must be there once)."""
    hits = [n for n, text in enumerate(FILES[path].splitlines(), 1) if needle in text]
    assert len(hits) == 1, (path, needle, hits)
    return hits[0]


EXPECTED = {
    ("secret.aws-key-id", "app/config.py", line("app/config.py", "AWS_KEY")),
    ("secret.assignment", "app/config.py", line("app/config.py", "db_password")),
    ("secret.github-token", "app/config.py", line("app/config.py", "GH =")),
    ("secret.slack-token", "app/config.py", line("app/config.py", "SLACK =")),
    ("secret.openai-key", "app/config.py", line("app/config.py", "OPENAI =")),
    ("secret.private-key", "keys/deploy_key", 1),
    ("secret.high-entropy", "deploy/settings.yml", 1),
    ("py.eval", "app/danger.py", line("app/danger.py", "eval(user_input)")),
    ("py.shell-true", "app/danger.py", line("app/danger.py", "shell=True")),
    ("py.os-system", "app/danger.py", line("app/danger.py", "os.system")),
    ("py.unsafe-deserialization", "app/danger.py", line("app/danger.py", "pickle.loads")),
    ("py.yaml-load", "app/danger.py", line("app/danger.py", "yaml.load(text)")),
    ("py.tls-verify-off", "app/danger.py", line("app/danger.py", "verify=False")),
    ("py.mktemp", "app/danger.py", line("app/danger.py", "mktemp()")),
    ("py.weak-password-hash", "app/danger.py", line("app/danger.py", "md5(password")),
    ("sql.string-built", "app/danger.py", line("app/danger.py", "{name}")),
    ("js.eval", "web/app.js", line("web/app.js", "eval(input)")),
    ("js.new-function", "web/app.js", line("web/app.js", "new Function")),
    ("js.exec-interpolated", "web/app.js", line("web/app.js", "exec(`")),
    ("js.inner-html", "web/app.js", line("web/app.js", "el.innerHTML = html")),
    ("js.dangerously-set-html", "web/app.js", line("web/app.js", "dangerouslySetInnerHTML")),
    ("sql.string-built", "web/app.js", line("web/app.js", "${id}")),
    ("deps.no-lockfile", "web/package.json", 1),
    ("sh.curl-pipe-shell", "scripts/install.sh", line("scripts/install.sh", "| sh")),
    ("sh.chmod-777", "scripts/install.sh", line("scripts/install.sh", "777")),
    ("docker.unpinned-base", "Dockerfile", 1),
    ("docker.add-url", "Dockerfile", line("Dockerfile", "tool.tar.gz")),
    ("docker.user-root", "Dockerfile", line("Dockerfile", "USER root")),
    ("docker.no-user", "docker/Dockerfile.nouser", 3),
    ("gha.pr-target-checkout", ".github/workflows/pr.yml", line(".github/workflows/pr.yml", "ref:")),
    ("gha.expression-in-run", ".github/workflows/pr.yml", line(".github/workflows/pr.yml", 'echo "${{')),
    ("deps.unpinned", "requirements.txt", line("requirements.txt", "requests")),
}


def make_repo(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return root


def audit(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, str(AUDIT), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return done


def found(report: dict) -> set[tuple[str, str, int]]:
    return {(f["rule"], f["path"], f["line"]) for f in report["findings"]}


def test_one_of_each_finding_and_no_look_alikes(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", FILES)
    git("init", "--quiet", str(repo))
    git("add", "-A", cwd=repo)
    report = json.loads(audit("--json", cwd=repo).stdout)
    assert found(report) == EXPECTED
    assert report["counts"] == {s: sum(f["severity"] == s for f in report["findings"]) for s in ("high", "medium", "low")}
    assert report["files_scanned"] == len(FILES)
    assert sorted(report["manifests"]) == ["requirements.txt", "ui/package.json", "web/package.json"]
    by_rule = {f["rule"]: f for f in report["findings"]}
    assert by_rule["secret.aws-key-id"]["severity"] == "high"
    assert by_rule["deps.unpinned"]["severity"] == "low"
    assert all(f["why"] and "\n" not in f["why"] for f in report["findings"])

    text = audit(cwd=repo).stdout  # the default: the current folder, as text
    assert text.splitlines()[0].startswith(f"security audit of .: {len(FILES)} files scanned, {len(EXPECTED)} findings")
    assert f"  app/config.py:{line('app/config.py', 'AWS_KEY')}  [secret.aws-key-id]  an AWS access key id AKIA…(20 chars)" in text
    assert text.index("\nHIGH\n") < text.index("\nMEDIUM\n") < text.index("\nLOW\n")
    assert "ui/package-lock.json" not in text
    for output in (text, json.dumps(report)):  # masked: no secret appears whole, nor most of it
        for secret in SECRETS:
            assert secret not in output and secret[:len(secret) // 2] not in output
        assert "MIIEowIBAAKCAQEA" not in output


def test_walk_without_git_skips_vendored_binary_and_large_files(tmp_path: Path) -> None:
    key_line = f'KEY = "{AWS}"\n'
    root = make_repo(tmp_path / "plain", {
        "src/app.py": "\n" + key_line,
        "node_modules/lib/index.js": "eval(x)\n" + key_line,
        "vendor/lib.py": key_line,
        ".venv/lib/site.py": key_line,
        "blob.bin": b"\x00\x01" + key_line.encode(),
        "big.txt": key_line + "#" * (1024 * 1024),
    })
    report = json.loads(audit(str(root), "--json", cwd=tmp_path).stdout)
    assert found(report) == {("secret.aws-key-id", "src/app.py", 2)}
    assert report["files_scanned"] == 1
    one_file = json.loads(audit(str(root / "src" / "app.py"), "--json", cwd=tmp_path).stdout)
    assert found(one_file) == {("secret.aws-key-id", "app.py", 2)}


def test_help_and_a_missing_path_still_exit_zero(tmp_path: Path) -> None:
    assert "--json" in audit("--help", cwd=tmp_path).stdout
    done = subprocess.run([sys.executable, str(AUDIT), "nowhere"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0 and "does not exist" in done.stderr


def test_the_skill_folder_passes_the_strict_check() -> None:
    assert [p for p in check_dir(REPO_ROOT / "skills") if Path(p.path).name == SKILL.name] == []
    skill = parse_skill(SKILL, "built-in", strict=True)
    assert skill.name == "security-audit" and skill.folders == ("scripts",) and skill.warnings == ()
    assert "python3 <skill folder>/scripts/audit.py" in skill.body
