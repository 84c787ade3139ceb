#!/usr/bin/env python3
"""What failed in a CI log: the command, the failing tests, file:line locations, the first real error with the
lines around it, and a guess of the kind of failure.

Knows pytest, unittest, Jest, Vitest, Go, TypeScript (tsc), ESLint, mypy, flake8/ruff, C/C++/Rust/Java
compilers, npm/yarn/pnpm and pip install failures, and killed, out-of-memory, timed-out or network-broken jobs.
ANSI colours, carriage-return progress lines and leading timestamps are removed first.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

TEST, TYPE, LINT, BUILD, DEP, INFRA, UNKNOWN = (
    "test failure", "type error", "lint", "build", "dependency", "infrastructure/flaky", "unknown")
NOISE = "noise"  # a generic exit line: the first error only when nothing else is found
GENERIC = "error"  # an error line of no known kind: the kind comes from the rest of the log
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][A-Z0-9]")
STAMP = re.compile(r"^\s*(?:\[?\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?"
                   r"|\[\d\d:\d\d:\d\d(?:\.\d+)?\])\s?")
WORKSPACE = re.compile(r"^(?:/home/runner/work/[^/]+/[^/]+/|/github/workspace/|/builds/[^/]+/[^/]+/|\./)")
NOISE_PATH = re.compile(r"site-packages|dist-packages|node_modules|^/usr/(?:lib|local/lib|include|local/go)/|^<"
                        r"|/lib/python\d|node:internal|/go/pkg/mod/")

# (pattern, kind), in order: the first that matches classifies a line. GENERIC: the kind comes from context.
ERRORS = [
    (r"^npm (?:ERR!|error) (?:code ELIFECYCLE|errno|Test failed|command|Lifecycle|A complete log|Failed at"
     r"|This is probably|\s*$|path |in workspace|at location)|^error Command failed|ELIFECYCLE", NOISE),
    (r"^(?:FAILED|ERROR) \S+(?:::| - |\.py$)|^(?:FAIL|ERROR): \w+ \(|^\s*--- FAIL: "
     r"|^\s*● (?!Console|Test suite failed)|^\s*FAIL\s+\S+ > |^\s*not ok \d+ |^AssertionError\b|^E\s{2,}\S", TEST),
    (r"(?i)\bout of memory\b|\bOOMKilled\b|exit code 137\b|^Killed\b|\d Killed\b|signal: killed"
     r"|Cannot allocate memory|No space left on device|MemoryError\b", INFRA),
    (r"(?i)\btimed out\b|deadline exceeded|exceeded the maximum execution time|\bETIMEDOUT\b|^\+* ?Timeout\b"
     r"|\bTimeout >\d|The operation was canceled|runner has received a shutdown signal", INFRA),
    (r"ECONNRESET|ECONNREFUSED|EAI_AGAIN|Could not resolve host|Temporary failure in name resolution"
     r"|Connection reset by peer|50[234] (?:Bad Gateway|Service Unavailable|Gateway Time-?out)"
     r"|(?i:rate limit exceeded)|429 Too Many Requests", INFRA),
    (r"^npm (?:ERR!|error) |^ ?ERR_PNPM_|^error (?:Couldn't find|An unexpected error)", DEP),
    (r"^ERROR: (?:Could not find a version|No matching distribution|ResolutionImpossible|Cannot install"
     r"|Failed building wheel)|error: subprocess-exited-with-error|^ModuleNotFoundError: No module named"
     r"|Cannot find module '|Cannot find package '|^go: .*(?:not found|unknown revision)|missing go\.sum entry"
     r"|^E: Unable to locate package", DEP),
    (r"^\S+\.pyi?:\d+(?::\d+)?: error: |error TS\d+: |^Found \d+ errors? in \d+ files? \(checked", TYPE),
    (r"^\s+\d+:\d+\s+error\s|^\S+\.py:\d+:\d+: [A-Z]+\d+ |^\s*✖ \d+ problems? \(\d+ error|^[Ww]ould reformat", LINT),
    (r"^\S+:\d+:\d+: (?:fatal )?error:|^\S+\.java:\d+: error:|^(?:\./)?\S+\.go:\d+:\d+: |^error\[E\d+\]: "
     r"|^error: (?:could not compile|linker|aborting)|undefined reference to|^SyntaxError\b", BUILD),
    (r"^(?:Error: )?Process completed with exit code|^make(?:\[\d+\])?: \*\*\*|^FAIL\s*$|^FAIL\t"
     r"|^FAILED \(|^=+ .*\b\d+ (?:failed|error)|^Tests?:\s+\d+ failed|^exit status \d|^Error: \S+ exited", NOISE),
    (r"^(?:[\w.]+\.)?\w*(?:Error|Exception)(?::|$)|^(?:Error|ERROR|error)[:!] |^panic: |^fatal: |^Fatal error"
     r"|Segmentation fault|^Uncaught ", GENERIC),
]
# pytest quotes the exception (`E   ModuleNotFoundError: …`, `FAILED t.py::x - OSError: …`): a dependency or
# infrastructure exception there names the kind; anything else stays a test failure.
QUOTED = re.compile(r"^(?:E\s{2,}|(?:FAILED|ERROR) \S.*? - )((?:[\w.]*(?:Error|Exception)|Failed)\b.*)")
ERRORS_RE = [(re.compile(p), kind) for p, kind in ERRORS]

FAILED_TESTS = [
    (re.compile(r"^(?:FAILED|ERROR) (\S+?(?:::.+?|\.py))(?: - .*)?$"), lambda m: m[1]),  # pytest summary
    (re.compile(r"^(\S+::\S+) (?:FAILED|ERROR)\b"), lambda m: m[1]),  # pytest -v
    (re.compile(r"^(?:FAIL|ERROR): (\w+) \(([\w.]+)\)"),  # unittest, 3.11 and older
     lambda m: m[2] if m[2].endswith("." + m[1]) else f"{m[2]}.{m[1]}"),
    (re.compile(r"^\s*--- FAIL: (\S+)"), lambda m: m[1]),  # go
    (re.compile(r"^\s*● (?!Console\b|Test suite failed to run)(.+)$"), lambda m: m[1].strip()),  # jest
    (re.compile(r"^\s*FAIL\s+(\S+ > .+?)(?:\s+\d+m?s)?$"), lambda m: m[1].strip()),  # vitest
    (re.compile(r"^\s*not ok \d+ - (.+?)(?:\s+#.*)?$"), lambda m: m[1]),  # TAP: node --test, tap
]
LOCATIONS = [
    re.compile(r"^\s*File \"([^\"]+)\", line (\d+)"),  # python traceback
    re.compile(r"^(\S+\.pyi?):(\d+)(?::\d+)?:(?:$| in | error:| [A-Z])"),  # pytest, mypy, flake8/ruff
    re.compile(r"^(\S+\.[cm]?[jt]sx?)\((\d+),\d+\): error"),  # tsc
    re.compile(r"^(\S+\.[cm]?[jt]sx?):(\d+):\d+ - error"),  # tsc --pretty
    re.compile(r"^\s*(?:at .*\(|at |❯ )([^\s()]+\.[cm]?[jt]sx?):(\d+):\d+\)?$"),  # jest/vitest/node stacks
    re.compile(r"^(\S+\.(?:c|cc|cpp|cxx|h|hpp|m|mm|rs|go|java|kt|swift|zig|s)):(\d+)(?::\d+)?: "),  # compilers
    re.compile(r"^\s*--> (\S+):(\d+):\d+"),  # rust
    re.compile(r"^\s+(\S+\.go):(\d+)(?: \+0x|$)"),  # go panic stacks
    re.compile(r"^\s*location: '(?:file://)?([^']+):(\d+):\d+'$"),  # TAP from node --test
]
GO_TEST_LINE = re.compile(r"^\s+(\S+_test\.go):(\d+): ")
GO_FAIL = re.compile(r"^\s*--- FAIL: ")
GO_NEXT = re.compile(r"^\s*(?:=== |--- (?:PASS|SKIP))")
ESLINT_FILE = re.compile(r"^\S+\.(?:[cm]?[jt]sx?|vue|svelte)$")
ESLINT_PROBLEM = re.compile(r"^\s+(\d+):\d+\s+error\s")
COMMANDS = [re.compile(p) for p in (r"^##\[group\]Run (.+)$", r"^\$ (.+)$", r"^\+ (\S.*)$",
                                    r"^> (?!\S+@\S* \S+$)(\S.*)$")]
NPM_COMMAND = re.compile(r"^npm (?:ERR!|error) command sh -c (.+)$")  # printed after the error
EXIT_CODE = re.compile(r"(?:exit code|exit status|Error|with code) (\d+)\b")


def clean(text: str) -> list[str]:
    """Lines without colours, timestamps, GitHub's `##[error]` prefix and overwritten progress output."""
    lines = []
    for raw in ANSI.sub("", text.removeprefix("\ufeff")).split("\n"):
        line = next((part for part in reversed(raw.rstrip("\r").split("\r")) if part.strip()), "")
        line = STAMP.sub("", line).rstrip()
        lines.append(line.removeprefix("##[error]"))
    return lines


def kind_of(line: str) -> str | None:
    """The kind a line's error pattern gives (maybe NOISE or GENERIC), None when the line is no error."""
    if (m := QUOTED.match(line)) and (inner := kind_of(m[1])) in (DEP, INFRA):
        return inner
    return next((kind for pattern, kind in ERRORS_RE if pattern.search(line)), None)


def place(path: str, line: str) -> str | None:
    """`path:line` relative to the workspace, or None for a path in a library or the language itself."""
    path = WORKSPACE.sub("", path).removeprefix(os.getcwd().rstrip("/") + "/")
    return None if NOISE_PATH.search(path) else f"{path}:{line}"


class GoTestLines:
    """`x_test.go:12:` lines that belong to failing Go tests: printed before `--- FAIL` under -v, after it
    otherwise; lines logged by passing tests are dropped."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.after_fail = False

    def feed(self, line: str) -> list[str]:
        if m := GO_TEST_LINE.match(line):
            if self.after_fail:
                return [f"{m[1]}:{m[2]}"]
            self.pending.append(f"{m[1]}:{m[2]}")
        elif GO_FAIL.match(line):
            found, self.pending, self.after_fail = self.pending, [], True
            return found
        elif GO_NEXT.match(line):
            self.pending, self.after_fail = [], False
        elif line and not line[0].isspace():
            self.after_fail = False
        return []


def analyse(text: str) -> dict[str, Any]:
    """The report for one log: kind, kinds, command, exit_code, failing_tests, locations, first_error."""
    lines = clean(text)
    tests: dict[str, None] = {}
    locations: dict[str, None] = {}
    errors: list[tuple[int, str]] = []  # (index, kind) of every real error line
    noise: list[int] = []
    eslint_file, go_tests = "", GoTestLines()
    for i, line in enumerate(lines):
        kind = kind_of(line)
        if kind == NOISE:
            noise.append(i)
        elif kind is not None:
            errors.append((i, kind))
        for pattern, name in FAILED_TESTS:
            if m := pattern.search(line):
                tests.setdefault(name(m))
                break
        for pattern in LOCATIONS:
            if (m := pattern.search(line)) and (where := place(m[1], m[2])):
                locations.setdefault(where)
                break
        if ESLINT_FILE.match(line):
            eslint_file = line
        elif eslint_file and (m := ESLINT_PROBLEM.match(line)) and (where := place(eslint_file, m[1])):
            locations.setdefault(where)
        locations.update(dict.fromkeys(go_tests.feed(line)))
    first = errors[0][0] if errors else (noise[0] if noise else None)
    kinds = list(dict.fromkeys(k for _, k in errors if k != GENERIC))
    kind = errors[0][1] if errors and errors[0][1] != GENERIC else (TEST if tests else (kinds + [UNKNOWN])[0])
    report: dict[str, Any] = {"kind": kind, "kinds": kinds, "command": command(lines, first),
                              "exit_code": exit_code(lines), "failing_tests": list(tests),
                              "locations": list(locations), "first_error": None}
    if first is not None:
        start = max(first - 5, 0)
        report["first_error"] = {"line": first + 1, "text": lines[first], "block_start": start + 1,
                                 "block": lines[start:first + 6]}
    return report


def command(lines: list[str], first: int | None) -> str | None:
    """The last command echoed before the first error, else the one npm names after it."""
    end = len(lines) if first is None else first + 1
    found = [m[1].strip() for line in lines[:end] for p in COMMANDS if (m := p.match(line))]
    late = [m[1].strip() for line in lines if (m := NPM_COMMAND.match(line))]
    return found[-1] if found else (late[0] if late else None)


def exit_code(lines: list[str]) -> int | None:
    """The job's exit code, from the last line that reports one."""
    for line in reversed(lines):
        if re.search(r"Process completed with exit code|exited with|^make.*\*\*\*|^exit status", line):
            if m := EXIT_CODE.search(line):
                return int(m[1])
    return None


def show(report: dict[str, Any], limit: int = 30) -> str:
    others = [k for k in report["kinds"] if k != report["kind"]]
    out = [f"Kind: {report['kind']}" + (f" (also seen: {', '.join(others)})" if others else "")]
    if report["command"]:
        out.append(f"Command: {report['command']}")
    if report["exit_code"] is not None:
        out.append(f"Exit code: {report['exit_code']}")
    for title, items in (("Failing tests", report["failing_tests"]), ("Locations", report["locations"])):
        if items:
            out += [f"{title} ({len(items)}):"] + [f"  {t}" for t in items[:limit]]
            out += [f"  … and {len(items) - limit} more"] if len(items) > limit else []
    error = report["first_error"]
    if error is None:
        out.append("No error line recognised; read the end of the log.")
        return "\n".join(out)
    out.append(f"First error (log line {error['line']}):")
    for n, text in enumerate(error["block"], error["block_start"]):
        out.append(f"{'>' if n == error['line'] else ' '} {n:>6} | {text}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Summarise a failing CI log: the failing command, failing tests, file:line locations, the first "
                    "real error with five lines either side, and the kind of failure (test failure, type error, "
                    "lint, build, dependency, infrastructure/flaky).")
    parser.add_argument("log", nargs="?", default="-", help="log file to read; `-` or nothing reads standard input")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    try:
        if args.log == "-":
            text = sys.stdin.buffer.read().decode("utf-8", errors="replace")
        else:
            with open(args.log, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        print(f"ci_failure.py: cannot read {args.log}: {exc.strerror}", file=sys.stderr)
        return 2
    report = analyse(text)
    print(json.dumps(report, indent=2) if args.json else show(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
