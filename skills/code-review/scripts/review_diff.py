#!/usr/bin/env python3
"""A structured summary of a diff to start a code review from: the files changed with +/- counts, the
added lines worth a look (TODO/FIXME/XXX, debug leftovers, possible secrets, lines over 200 characters,
conflict markers), added files over 1 MB, and whether tests changed along with the source.

Without --base: the uncommitted work, i.e. staged and unstaged changes against HEAD plus untracked
files; when there is none, the branch against its default base instead. With --base [REF]: the commits
since the merge base of REF and HEAD (committed work only); REF defaults to the remote's default
branch, else main or master. Paths are relative to the repository's top. Python 3 stdlib and git only.
"""

from __future__ import annotations

import argparse
import codecs
import json
import os
import re
import subprocess
import sys

LARGE_FILE, LONG_LINE, SHOWN = 1024 * 1024, 200, 40  # SHOWN: items per section in text; --json has all
DOCS = (".md", ".rst", ".txt", ".adoc")
SOURCE = (".py", ".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".go", ".rs", ".java", ".kt", ".scala", ".rb",
          ".php", ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".swift", ".m", ".sh", ".lua", ".ex", ".exs", ".vue")
TEST = re.compile(r"(^|/)(tests?|__tests__|spec|specs|testing)/|(^|/)test_[^/]*$|_test\.[a-z]+$|"
                  r"\.(test|spec)\.[a-z]+$|Tests?\.(java|kt|cs|swift)$|_spec\.rb$|(^|/)conftest\.py$")
TODO = re.compile(r"\b(TODO|FIXME|XXX)\b")
DEBUG = {"print(": r"(?<![\w.])print\(", "console.log": r"\bconsole\.log\(", "debugger": r"^\s*debugger\s*;?\s*$",
         "pdb.set_trace": r"\bi?pdb\.set_trace\(", "breakpoint()": r"(?<![\w.])breakpoint\(\)",
         "binding.pry": r"\bbinding\.pry\b"}
SECRETS = {  # a group named v is the secret part of the match; without one it is the whole match
    "AWS access key id": r"\b(?P<v>(?:AKIA|ASIA)[0-9A-Z]{16})\b",
    "private key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    "GitHub token": r"\b(?P<v>gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})",
    "Slack token": r"\b(?P<v>xox[abposr]-[A-Za-z0-9-]{10,})",
    "API key (sk-)": r"\b(?P<v>sk-[A-Za-z0-9_-]{16,})",
    "hard-coded credential": r"(?i)\b(?:password|passwd|pwd|secret|api[_-]?key|access[_-]?token|auth[_-]?token)\w*"
                             r"[\"']?\s*[:=]\s*[\"'](?P<v>[^\"'\s]{4,})[\"']"}
DEBUG_RE = {k: re.compile(v) for k, v in DEBUG.items()}
SECRET_RE = {k: re.compile(v) for k, v in SECRETS.items()}
CONFLICT = re.compile(r"^(<<<<<<<|>>>>>>>|\|\|\|\|\|\|\|)( |$)")
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
DIFF = ["diff", "--no-color", "--no-ext-diff", "--no-relative", "-M"]


class GitError(Exception):
    pass


def git(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(["git", "-c", "core.quotePath=false", *args], capture_output=True)
    if done.returncode not in ok:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def commit(ref: str) -> str:
    return git("rev-parse", "--verify", "--quiet", ref + "^{commit}", ok=(0, 1)).strip()


def default_base() -> str:
    """The remote's default branch (origin first), else main or master, remote-tracking before local;
    "" when there is none."""
    remotes = sorted(git("remote").split(), key=lambda r: r != "origin")
    heads = [git("symbolic-ref", "--quiet", "--short", f"refs/remotes/{r}/HEAD", ok=(0, 1)).strip() for r in remotes]
    for ref in [*filter(None, heads), *(f"{r}/{b}" for r in remotes for b in ("main", "master")), "main", "master"]:
        if commit(ref):
            return ref
    return ""


def mask(value: str) -> str:
    return value[:4 if len(value) >= 16 else 2 if len(value) >= 8 else 0] + "*" * 8


def secrets_in(text: str) -> list[tuple[str, re.Match]]:
    """Each secret in `text` once: a match whose secret part overlaps an earlier one is dropped."""
    found: list[tuple[str, re.Match]] = []
    for kind, m in ((k, m) for k, pattern in SECRET_RE.items() for m in pattern.finditer(text)):
        start, end = m.span("v") if "v" in m.groupdict() else m.span()
        if not any(start < s[1].end() and s[1].start() < end for s in found):
            found.append((kind, m))
    return found


def snippet(text: str) -> str:
    """An added line as shown: stripped, any secret in it masked, at most 120 characters."""
    for _, m in sorted(secrets_in(text), key=lambda s: -s[1].start()):
        if "v" in m.groupdict():
            text = text[:m.start("v")] + mask(m["v"]) + text[m.end("v"):]
    text = text.strip()
    return text if len(text) <= 120 else text[:119] + "…"


def changed_files(spec: list[str]) -> list[dict]:
    """The files of `git diff SPEC` with status and +/- counts, read from -z output (any path is safe)."""
    status, counts = (git(*DIFF, "-z", flag, *spec).split("\0") for flag in ("--name-status", "--numstat"))
    files, i = {}, 0
    while i < len(status) - 1:
        code, old, path = status[i][0], None, status[i + 1]
        if code in "RC":
            old, path, i = path, status[i + 2], i + 1
        files[path] = {"path": path, "old_path": old, "status": code, "added": 0, "deleted": 0, "binary": False,
                       "untracked": False}
        i += 2
    i = 0
    while i < len(counts) - 1:
        added, deleted, path = counts[i].split("\t", 2)
        path, i = (counts[i + 2], i + 3) if not path else (path, i + 1)  # a rename: old and new path follow
        if path in files:
            files[path].update(added=int(added.replace("-", "0")), deleted=int(deleted.replace("-", "0")),
                               binary=added == "-")
    return list(files.values())


def added_lines(spec: list[str]) -> list[tuple[str, int, str]]:
    """(path, line number in the new file, text) for every added line of `git diff --unified=0 SPEC`."""
    patch = git(*DIFF, "--no-textconv", "--unified=0", "--src-prefix=a/", "--dst-prefix=b/", *spec)
    found: list[tuple[str, int, str]] = []
    path, old_left, new_left, number = None, 0, 0, 0
    for line in patch.split("\n"):
        if old_left or new_left:  # inside a hunk: count its lines, whatever they start with
            if line.startswith("+"):
                found += [(path, number, line[1:])] if path else []
                number, new_left = number + 1, new_left - 1
            elif line.startswith("-"):
                old_left -= 1
        elif line.startswith("+++ "):
            name = line[4:].rstrip("\t")
            if name.startswith('"'):
                name = codecs.escape_decode(name[1:-1].encode())[0].decode(errors="replace")
            path = None if name == "/dev/null" else name[2:]
        elif m := re.match(r"@@ -\d+(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", line):
            old_left, number, new_left = int(m[1] or 1), int(m[2]), int(m[3] or 1)
    return found


def untracked() -> tuple[list[dict], list[tuple[str, int, str]]]:
    """Untracked files as added ones; every line of a text file up to 1 MB counts as added."""
    files, lines = [], []
    for path in filter(None, git("ls-files", "--others", "--exclude-standard", "-z").split("\0")):
        entry = {"path": path, "old_path": None, "status": "A", "added": 0, "deleted": 0, "binary": False,
                 "untracked": True}
        files.append(entry)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as f:
            data = f.read(8000)
            entry["binary"] = b"\0" in data
            if entry["binary"] or os.fstat(f.fileno()).st_size > LARGE_FILE:
                continue
            data += f.read()
        text = data.decode(errors="replace").split("\n")
        text = text[:-1] if text and text[-1] == "" else text
        entry["added"] = len(text)
        lines += [(path, n, t) for n, t in enumerate(text, 1)]
    return files, lines


def collect(base: str | None) -> dict:
    os.chdir(git("rev-parse", "--show-toplevel").strip())
    head = commit("HEAD")
    if base is None:  # the uncommitted work, if there is any
        spec = [head or EMPTY_TREE]
        new_files, new_lines = untracked()
        files, lines = changed_files(spec) + new_files, added_lines(spec) + new_lines
        rng: dict[str, str | None] = {"mode": "worktree", "base": head or None, "head": None,
               "description": "uncommitted changes (staged, unstaged and untracked) against HEAD"}
    fallback = base is None and not files and bool(head)  # nothing uncommitted: the branch, if it has a base
    if fallback or base == "":
        base = default_base()
        if not base and not fallback:
            raise GitError("no base found (no remote default branch, main or master); pass --base REF")
    if base:
        if not commit(base):
            raise GitError(f"unknown base ref {base!r}")
        merge_base = git("merge-base", base, "HEAD", ok=(0, 1)).strip()
        if not merge_base:
            raise GitError(f"{base} and HEAD have no common ancestor")
        files, lines = changed_files([merge_base, "HEAD"]), added_lines([merge_base, "HEAD"])
        rng = {"mode": "base", "base": base, "merge_base": merge_base, "head": head, "description":
               f"{'no uncommitted changes, so ' if fallback else ''}HEAD against {base} (merge base {merge_base[:10]})"}
    for f in files:
        f["test"] = bool(TEST.search(f["path"]))
        f["source"] = not f["test"] and f["path"].endswith(SOURCE)
    totals = {"files": len(files), "added": sum(f["added"] for f in files), "deleted": sum(f["deleted"] for f in files)}
    return {"range": rng, "files": files, "totals": totals, **scan(files, lines, rng["mode"] == "worktree")}


def scan(files: list[dict], lines: list[tuple[str, int, str]], worktree: bool) -> dict:
    todos, debug, secrets, long_lines, large = [], [], [], [], []
    markers: dict[str, list[int]] = {}
    conflicted: set[str] = set()
    for path, n, text in lines:
        if TODO.search(text):
            todos.append({"file": path, "line": n, "text": snippet(text)})
        kinds = [kind for kind, pattern in DEBUG_RE.items() if pattern.search(text)]
        if kinds and not path.endswith(DOCS):
            debug.append({"file": path, "line": n, "kind": kinds[0], "text": snippet(text)})
        secrets += [{"file": path, "line": n, "kind": kind, "masked": mask(m["v"]) if "v" in m.groupdict() else m[0]}
                    for kind, m in secrets_in(text)]
        if len(text) > LONG_LINE:
            long_lines.append({"file": path, "line": n, "length": len(text)})
        if CONFLICT.match(text) or text.rstrip() == "=======":
            markers.setdefault(path, []).append(n)
            conflicted.update([path] if CONFLICT.match(text) else [])
    for f in files:
        if f["status"] == "A":
            size = (os.path.getsize(f["path"]) if worktree and os.path.isfile(f["path"])
                    else int(git("cat-file", "-s", f"HEAD:{f['path']}", ok=(0, 128)).strip() or 0))
            large += [{"file": f["path"], "bytes": size}] if size > LARGE_FILE else []
    source, tests = [f["path"] for f in files if f["source"]], [f["path"] for f in files if f["test"]]
    warning = f"source changed without tests ({plural(len(source), 'source file')} changed, no test file)" \
        if source and not tests else None
    return {"todos": todos, "debug": debug, "secrets": secrets, "large_files": large, "long_lines": long_lines,
            "conflicts": [{"file": p, "lines": markers[p]} for p in markers if p in conflicted],
            "tests": {"source_files": source, "test_files": tests, "warning": warning}}


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def text_report(r: dict) -> str:
    t = r["totals"]
    out = [f"Reviewing: {r['range']['description']}", f"Files changed: {t['files']} (+{t['added']} -{t['deleted']})"]
    for f in r["files"]:
        name = f"{f['old_path']} -> {f['path']}" if f["old_path"] else f["path"]
        counts = "binary" if f["binary"] else f"+{f['added']} -{f['deleted']}"
        out.append(f"  {f['status']} {name}  {counts}{'  (untracked)' if f.get('untracked') else ''}")
    sections = [("TODO/FIXME/XXX added", "todos", lambda i: i["text"]),
                ("Debug leftovers added", "debug", lambda i: f"[{i['kind']}] {i['text']}"),
                ("Possible secrets added (values masked)", "secrets", lambda i: f"{i['kind']}: {i['masked']}"),
                (f"Added files over {LARGE_FILE // 1024 // 1024} MB", "large_files",
                 lambda i: f"{i['bytes'] / 1024 / 1024:.1f} MB"),
                (f"Added lines over {LONG_LINE} characters", "long_lines", lambda i: f"{i['length']} characters"),
                ("Conflict markers", "conflicts", lambda i: "lines " + ", ".join(map(str, i["lines"])))]
    for title, key, show in sections:
        items = r[key]
        out.append(f"{title}: {len(items) or 'none'}")
        for i in items[:SHOWN]:
            out.append(f"  {i['file']}{':' + str(i['line']) if 'line' in i else ''}  {show(i)}")
        if len(items) > SHOWN:
            out.append(f"  … and {len(items) - SHOWN} more (--json lists all)")
    tests = r["tests"]
    out.append(f"Tests: {plural(len(tests['source_files']), 'source file')} and "
               f"{plural(len(tests['test_files']), 'test file')} changed")
    if tests["warning"]:
        out.append(f"Warning: {tests['warning']}: " + ", ".join(tests["source_files"][:SHOWN]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="review_diff.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", nargs="?", const="", metavar="REF",
                        help="review HEAD's commits since the merge base with REF (alone: the default branch)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    try:
        report = collect(args.base)
    except GitError as exc:
        print(f"review_diff.py: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else text_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
