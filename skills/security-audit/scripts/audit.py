#!/usr/bin/env python3
"""Security audit of a repository, report only: hard-coded secrets (values masked), dangerous calls,
risky Docker and GitHub Actions configuration, unpinned dependencies.

It reads files and never runs, changes or uploads them, and never prints a secret in full. Files are
the repository's tracked and unignored ones (`git ls-files`), else a walk that skips .git,
node_modules, vendor and virtualenvs; binaries and files over 1 MB are skipped. Each finding has a
severity (high, medium, low), a rule id, file:line and why. The exit code is 0 whatever it finds:
findings are leads to verify, not a verdict. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

MAX_BYTES = 1024 * 1024
MAX_LINE = 4000  # minified code: only the start of a very long line is matched
SKIP_DIRS = {".git", "node_modules", "vendor", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache",
             ".pytest_cache", "site-packages", "bower_components"}
SEVERITIES = ("high", "medium", "low")
JS = {".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".vue", ".svelte"}
SQL_HOSTS = JS | {".py", ".java", ".kt", ".go", ".rb", ".php", ".cs", ".scala"}
CONFIG = {".yml", ".yaml", ".json", ".ini", ".cfg", ".conf", ".toml", ".properties", ".env", ".tfvars", ".xml"}
LOCKFILES = {"package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb",
             "poetry.lock", "Pipfile.lock", "Cargo.lock", "composer.lock", "Gemfile.lock", "go.sum", "uv.lock"}
MANIFESTS = re.compile(r"(requirements[\w.-]*\.txt|pyproject\.toml|setup\.py|setup\.cfg|Pipfile|package\.json|"
                       r"go\.mod|Cargo\.toml|Gemfile|pom\.xml|build\.gradle(\.kts)?|composer\.json)$")
Hit = tuple[int, str, str, str]  # (line, rule id, severity, why)


class Rule(NamedTuple):
    """A line rule for one kind of file; `unless` and `only_if` are searched in the lines around a match."""
    id: str
    severity: str
    kind: str
    pattern: str
    why: str
    unless: str = ""
    only_if: str = ""


RULES = [
    Rule("py.eval", "medium", "py", r"(?<![\w.])(?<!def )(?:eval|exec)\(",
         "eval/exec runs whatever code its argument holds: code injection if any of it comes from outside"),
    Rule("py.shell-true", "high", "py", r"\bshell\s*=\s*True\b",
         "a shell parses the command, so outside text in it can run other commands; pass an argument list instead"),
    Rule("py.os-system", "medium", "py", r"\bos\.(?:system|popen)\s*\(",
         "runs the command through a shell; use subprocess.run([...]) with an argument list"),
    Rule("py.unsafe-deserialization", "medium", "py",
         r"\b(?:c?[Pp]ickle|dill|marshal|jsonpickle)\.(?:loads?|decode|Unpickler)\s*\(",
         "unpickling runs code chosen by whoever wrote the bytes; use JSON for anything not fully trusted"),
    Rule("py.yaml-load", "high", "py", r"\byaml\.(?:load|load_all|unsafe_load|full_load)\s*\(",
         "yaml.load without SafeLoader can build arbitrary Python objects; use yaml.safe_load",
         unless=r"\b(?:C?SafeLoader|BaseLoader)\b"),
    Rule("py.tls-verify-off", "high", "py",
         r"\bverify\s*=\s*False\b|_create_unverified_context\s*\(|\bCERT_NONE\b|check_hostname\s*=\s*False",
         "TLS certificates are not checked: anyone on the network path can read and alter the traffic"),
    Rule("py.mktemp", "medium", "py", r"(?<![\w.])mktemp\(|\btempfile\.mktemp\s*\(",
         "tempfile.mktemp returns a name another process can claim first; use mkstemp or NamedTemporaryFile"),
    Rule("py.weak-password-hash", "high", "py", r"\b(?:md5|sha1)\s*\(|\bnew\s*\(\s*['\"](?:md5|sha1)['\"]",
         "md5/sha1 near a password: fast hashes are brute-forced; use hashlib.scrypt, bcrypt or argon2",
         only_if=r"(?i)passw|\bpwd\b"),
    Rule("js.eval", "medium", "js", r"(?<![\w.$])eval\s*\(",
         "eval runs whatever code its argument holds: code injection if any of it comes from outside"),
    Rule("js.new-function", "medium", "js", r"\bnew\s+Function\s*\(",
         "new Function compiles a string into code, like eval"),
    Rule("js.exec-interpolated", "high", "js", r"\bexec(?:Sync)?\s*\(\s*(?:`[^`]*\$\{|['\"][^'\"]*['\"]\s*\+)",
         "child_process.exec runs a shell over an interpolated string: command injection; use execFile with args"),
    Rule("js.inner-html", "medium", "js",
         r"\.(?:inner|outer)HTML\s*\+?=(?!=)|\binsertAdjacentHTML\s*\(|\bdocument\.write\s*\(",
         "HTML from a string: cross-site scripting if any of it comes from outside; use textContent"),
    Rule("js.dangerously-set-html", "medium", "js", r"\bdangerouslySetInnerHTML\b",
         "raw HTML rendered by React: cross-site scripting unless it is sanitised first"),
    Rule("sh.curl-pipe-shell", "high", "sh", r"\b(?:curl|wget)\b[^|#\n]*\|\s*(?:sudo\s+)?(?:ba|z|k|da)?sh\b",
         "runs a downloaded script unseen; download it, check a pinned checksum, then run it"),
    Rule("sh.chmod-777", "medium", "sh", r"\bchmod\s+(?:-R\s+)?(?:0?777|a\+rwx|ugo\+rwx)\b",
         "world-writable: any user or process on the machine can change it"),
    Rule("docker.add-url", "medium", "docker", r"^\s*ADD\s+(?!.*--checksum)(?:--\S+\s+)*https?://",
         "ADD downloads without checking what arrives; use ADD --checksum= or curl plus a checksum"),
]
TOKENS = [  # (rule id, pattern, what it is)
    ("secret.aws-key-id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b", "an AWS access key id"),
    ("secret.github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})", "a GitHub token"),
    ("secret.slack-token", r"\bxox[abposre]-\d{6,}-[A-Za-z0-9-]{8,}|\bxapp-\d-[A-Za-z0-9-]{10,}|"
                           r"https://hooks\.slack\.com/services/[\w/]{20,}", "a Slack token or webhook"),
    ("secret.openai-key", r"\bsk-(?:proj-|svcacct-|admin-|ant-)?[A-Za-z0-9_-]{20,}", "an OpenAI-style API key"),
]
SECRET_HINT = re.compile(r"(?i)pass|pwd|secret|token|key")  # cheap test before the costly ASSIGN
PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
SECRET_WORDS = r"[\w.-]*(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key)[\w.-]*"
ASSIGN = re.compile(r"(?i)(?P<key>" + SECRET_WORDS + r")[\"']?\s*(?::\s*[\w\[\], |.]+?\s*)?(?:=|:|=>)\s*"
                    r"(?P<q>[\"'])(?P<value>[^\"'\s]{6,})(?P=q)")
BARE = re.compile(r"(?i)^\s*(?:export\s+)?(?P<key>" + SECRET_WORDS + r")\s*[:=]\s*(?P<value>[^\s\"'#]{8,})\s*(?:#.*)?$")
NOT_SECRET_KEY = re.compile(r"(?i)(?:url|uri|path|file|dir|name|type|id|env|var|header|field|len|length|prefix|"
                            r"format|pattern|regex|endpoint|expiry|expires|ttl|count|limit|min|max|kind|mode)$")
PLACEHOLDER = re.compile(r"(?i)example|sample|dummy|placeholder|changeme|change[_-]me|your[_-]|xxxx|\*\*\*|<[^>]*>|"
                         r"\$\{|\{\{|%\(|redacted|fake|(?<![a-z])test(?![a-z])|not[_-]?a[_-]?real|"
                         r"^(?:secret|password|token|bearer|none|null)$|^\{[\w.]*\}$")
CHECKSUM_CONTEXT = re.compile(r"(?i)(?<![a-z])(?:integrity|checksum|sha\d*|hash|digest|nonce|commit|rev)(?![a-z])")
SQL = re.compile(r"(?i)\b(?:select\b.{0,200}?\bfrom|insert\s+into|update\s+\w+\s+set|delete\s+from|drop\s+table)\b")
SQL_BUILT = re.compile(r"(?<!\w)[rR]?[fF][rR]?[\"'].*\{|[\"']\s+%\s*[\w(]|\.format\s*\(|[\"']\s*\+\s*[\w(]|"
                       r"[\w)]\s*\+\s*[\"']|`[^`]*\$\{")
SQL_RUN = re.compile(r"\b(?:execute|executemany|executescript|query|raw|text|exec)\s*\(")
GHA_EXPR = re.compile(r"\$\{\{[^}]*?\bgithub\.(event\.[\w.]+|head_ref)")


def mask(value: str) -> str:
    """Enough to recognise a value by, never enough to use it."""
    return f"{value[:4] if len(value) >= 16 else value[:1]}…({len(value)} chars)"


def entropy(text: str) -> float:
    return -sum(c / len(text) * math.log2(c / len(text)) for c in (text.count(ch) for ch in set(text)))


def file_kinds(rel: str, first_line: str) -> set[str]:
    """Which rules apply: py, js, sh, docker, workflow, config, sql."""
    name = rel.rsplit("/", 1)[-1]
    low, ext = name.lower(), os.path.splitext(name.lower())[1]
    shebang = first_line if first_line.startswith("#!") else ""
    kinds = {"py"} if ext in (".py", ".pyw") or "python" in shebang else set()
    kinds |= {"js"} if ext in JS else set()
    if ext in (".sh", ".bash", ".zsh", ".ksh", ".yml", ".yaml") or low == "makefile" \
            or re.search(r"\b(?:ba|z|k|da)?sh\b", shebang):
        kinds.add("sh")
    kinds |= {"docker", "sh"} if low.startswith(("dockerfile", "containerfile")) or ext == ".dockerfile" else set()
    kinds |= {"workflow"} if re.match(r"(?:.*/)?\.github/workflows/[^/]+\.ya?ml$", rel) else set()
    kinds |= {"config"} if (ext in CONFIG or low.startswith(".env")) and name not in LOCKFILES else set()
    return kinds | ({"sql"} if ext in SQL_HOSTS else set())


def overlaps(span: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(span[0] < end and start < span[1] for start, end in spans)


def secrets(lines: list[str], kinds: set[str]) -> list[Hit]:
    """Tokens, private keys, secret-named literals and (config files) random-looking strings; values masked."""
    found: list[Hit] = []
    for n, line in enumerate(lines, 1):
        seen: list[tuple[int, int]] = []  # spans already reported, so one value is one finding
        if PRIVATE_KEY.search(line):
            found.append((n, "secret.private-key", "high", "a private key block is committed; remove it, rotate it"))
        for rule_id, pattern, what in TOKENS:
            for m in re.finditer(pattern, line):
                if not PLACEHOLDER.search(m.group()) and len(set(m.group())) > 6:
                    seen.append(m.span())
                    found.append((n, rule_id, "high", f"{what} {mask(m.group())}; revoke it, then remove it"))
        hint = SECRET_HINT.search(line)
        matches = list(ASSIGN.finditer(line)) if hint else []
        bare = BARE.match(line) if hint and "config" in kinds else None
        if bare and re.search(r"[\d\W_]|[a-z][A-Z]", bare.group("value")):  # a value, not a word like `required`
            matches.append(bare)
        for m in matches:
            key, value = m.group("key"), m.group("value")
            if not (NOT_SECRET_KEY.search(key) or PLACEHOLDER.search(value) or len(set(value)) < 5
                    or re.fullmatch(r"[A-Z][A-Z0-9_]+|[\w.]+\(.*|https?://[^@]*", value)
                    or overlaps(m.span("value"), seen)):
                seen.append(m.span("value"))
                found.append((n, "secret.assignment", "medium", f"`{key}` is set to a literal {mask(value)}; "
                              "read it from the environment or a secret store"))
        if "config" not in kinds or CHECKSUM_CONTEXT.search(line):
            continue
        for m in re.finditer(r"[A-Za-z0-9+/_=-]{24,}", line):
            v = m.group()
            if (not overlaps(m.span(), seen) and all(re.search(c, v) for c in ("[a-z]", "[A-Z]", r"\d"))
                    and entropy(v) >= 4.2 and not PLACEHOLDER.search(v)
                    and not any(re.fullmatch(r"[a-z]{3,}", part) for part in v.split("/"))):  # a path, not a key
                seen.append(m.span())
                found.append((n, "secret.high-entropy", "medium", f"a random-looking string {mask(v)} in a config "
                              "file; if it is a credential, move it out"))
    return found


def line_rules(lines: list[str], kinds: set[str]) -> list[Hit]:
    """The RULES for this kind of file, and SQL built from strings near a call that runs it."""
    found: list[Hit] = []
    active = [(r, re.compile(r.pattern)) for r in RULES if r.kind in kinds]
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("#", "//", "* ", "/*")) and not line.startswith("#!"):
            continue
        for r, pattern in active:
            if not pattern.search(line):
                continue
            window = "\n".join(lines[max(0, i - 2):i + 4])
            if not (r.unless and re.search(r.unless, window)) and (not r.only_if or re.search(r.only_if, window)):
                found.append((i + 1, r.id, r.severity, r.why))
        if "sql" in kinds and SQL.search(line) and SQL_BUILT.search(line) and SQL_RUN.search("\n".join(lines[i:i + 6])):
            found.append((i + 1, "sql.string-built", "high",
                          "SQL built by string formatting, then run: SQL injection; pass values as query parameters"))
    return found


def dockerfile(lines: list[str]) -> list[Hit]:
    found: list[Hit] = []
    stages: set[str] = set()
    last_from, user = 0, None
    for n, line in enumerate(lines, 1):
        if m := re.match(r"\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?", line, re.I):
            image, last_from, user = m.group(1), n, None
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if image.lower() not in stages | {"scratch"} and not re.search(r"[$@]", image) and tag in ("", "latest"):
                found.append((n, "docker.unpinned-base", "low", f"base image `{image}` floats with `latest`: builds "
                              "change unreviewed; pin a version or digest"))
            stages.add((m.group(2) or "").lower())
        elif m := re.match(r"\s*USER\s+(\S+)", line, re.I):
            user = (n, m.group(1))
    if last_from and user is None:
        found.append((last_from, "docker.no-user", "low", "the final stage sets no USER: the container runs as root"))
    elif user and user[1].split(":")[0] in ("root", "0"):
        found.append((user[0], "docker.user-root", "medium", "the container runs as root; use an unprivileged USER"))
    return found


def workflow(lines: list[str]) -> list[Hit]:
    found: list[Hit] = []
    run_indent = None  # inside a `run: |` block: the indentation of its key
    pr_target = any(re.search(r"\bpull_request_target\b", line) for line in lines)
    for n, line in enumerate(lines, 1):
        indent = len(line) - len(line.lstrip())
        if run_indent is not None and line.strip() and indent <= run_indent:
            run_indent = None
        script = line if run_indent is not None else ""
        if m := re.match(r"\s*(?:-\s+)?run:\s*(.*)$", line):
            script, run_indent = m.group(1), indent if m.group(1).startswith(("|", ">")) else None
        if pr_target and re.search(r"\b(?:ref|repository):.*github\.(?:event\.pull_request\.head\.|head_ref)", line):
            found.append((n, "gha.pr-target-checkout", "high", "pull_request_target checks out the PR's code with "
                          "the base repository's secrets and write token: untrusted code runs privileged"))
        if fields := [f for f in GHA_EXPR.findall(script) if not re.search(r"\.(?:number|id|sha)$|_at$", f)]:
            found.append((n, "gha.expression-in-run", "high", f"`github.{fields[0]}` is pasted into a shell script: "
                          "script injection; pass it through env: and quote \"$VAR\""))
    return found


def dependencies(rel: str, lines: list[str], names: set[str]) -> list[Hit]:
    found: list[Hit] = []
    folder, name = os.path.dirname(rel), os.path.basename(rel)
    if re.fullmatch(r"requirements[\w.-]*\.txt", name) or os.path.basename(folder) == "requirements":
        for n, line in enumerate(lines, 1):
            spec = line.split(" #")[0].strip()
            if spec and not spec.startswith(("#", "-")) and "==" not in spec and " @ " not in spec \
                    and not re.match(r"(?:git\+|https?:|file:|\.|/)", spec):
                found.append((n, "deps.unpinned", "low", f"`{spec[:60]}` is not pinned with ==: the newest release "
                              "installs unreviewed; pin it or use a lock file"))
    if name == "package.json" and not any(os.path.join(folder, lock) in names for lock in LOCKFILES) \
            and any('"dependencies"' in line or '"devDependencies"' in line for line in lines):
        found.append((1, "deps.no-lockfile", "low", "package.json without a lock file: each install may resolve "
                      "different versions; commit package-lock.json (or yarn's, pnpm's)"))
    return found


def list_files(root: Path) -> list[str]:
    """Paths relative to `root`: git's tracked and unignored files, else a walk; skipped folders left out."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, check=True, timeout=60).stdout.decode("utf-8", "surrogateescape")
        rels = sorted({p for p in out.split("\0") if p})
    except (OSError, subprocess.SubprocessError):
        rels = []
        for top, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not (Path(top, d) / "pyvenv.cfg").exists())
            rels += [os.path.relpath(os.path.join(top, f), root).replace(os.sep, "/") for f in sorted(files)]
    return [r for r in rels if not SKIP_DIRS.intersection(r.split("/")[:-1])]


def read_text(path: Path) -> str | None:
    """The file's text, or None for links, binaries, unreadable and oversized files."""
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return None if b"\0" in data[:8192] else data.decode("utf-8", "replace")


def audit(target: Path) -> dict:
    root, rels = (target.parent, [target.name]) if target.is_file() else (target, list_files(target))
    findings, manifests, scanned = [], [], 0
    for rel in rels:
        if (text := read_text(root / rel)) is None:
            continue
        scanned += 1
        lines = [line[:MAX_LINE] for line in text.splitlines()]
        kinds = file_kinds(rel, lines[0] if lines else "")
        hits = secrets(lines, kinds) + line_rules(lines, kinds) + dependencies(rel, lines, set(rels))
        hits += (dockerfile(lines) if "docker" in kinds else []) + (workflow(lines) if "workflow" in kinds else [])
        findings += [{"severity": sev, "rule": rule_id, "path": rel, "line": n, "why": why}
                     for n, rule_id, sev, why in hits]
        manifests += [rel] if MANIFESTS.search(os.path.basename(rel)) else []
    findings.sort(key=lambda f: (SEVERITIES.index(f["severity"]), f["path"], f["line"], f["rule"]))
    return {"root": str(target), "files_scanned": scanned,
            "counts": {s: sum(f["severity"] == s for f in findings) for s in SEVERITIES},
            "findings": findings, "manifests": manifests}


def render(report: dict) -> str:
    counts = report["counts"]
    out = [f"security audit of {report['root']}: {report['files_scanned']} files scanned, "
           f"{len(report['findings'])} findings ({', '.join(f'{counts[s]} {s}' for s in SEVERITIES)})"]
    for severity in SEVERITIES:
        rows = [f for f in report["findings"] if f["severity"] == severity]
        if rows:
            out += ["", severity.upper()] + [f"  {f['path']}:{f['line']}  [{f['rule']}]  {f['why']}" for f in rows]
    return "\n".join(out + ["", "dependency manifests: " + (", ".join(report["manifests"]) or "none found")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="audit.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default=".", help="repository folder or single file (default: .)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    target = Path(args.path)
    if not target.exists():
        print(f"audit.py: {target} does not exist", file=sys.stderr)
        return 0
    report = audit(target)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
