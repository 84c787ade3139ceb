"""The built-in fix-ci skill: ci_failure.py reads real-shaped CI logs (colours, timestamps and all) and names
the failing tests, the file:line locations, the first real error and the kind of failure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slackbot.agent.skills import check_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "skills" / "fix-ci" / "scripts" / "ci_failure.py"
RED, BOLD, RESET = "\x1b[31m", "\x1b[1m", "\x1b[0m"


def stamped(log: str) -> str:
    """A log as GitHub Actions stores it: every line behind a timestamp."""
    return "".join(f"2024-05-01T12:00:{i % 60:02d}.1234567Z {line}\n" for i, line in enumerate(log.splitlines()))


def analyse(log: str, *args: str, cwd: Path | None = None) -> dict:
    """The script's --json report for `log` given on standard input."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--json", *args], input=log.encode(), capture_output=True,
                          timeout=60, check=True, cwd=cwd)
    return json.loads(done.stdout)


PYTEST = f"""\
##[group]Run python -m pytest -q
{BOLD}============================= test session starts =============================={RESET}
collected 3 items

tests/test_calc.py {RED}F{RESET}.s                                                 [100%]

=================================== FAILURES ===================================
{RED}{BOLD}___________________________________ test_add ___________________________________{RESET}

    def test_add():
>       assert add(2, 2) == 4
{RED}E       assert 5 == 4{RESET}
{RED}E        +  where 5 = add(2, 2){RESET}

tests/test_calc.py:12: AssertionError
=========================== short test summary info ============================
{RED}FAILED{RESET} tests/test_calc.py::test_add - assert 5 == 4
{RED}FAILED{RESET} tests/test_calc.py::test_add[two words] - assert 5 == 4
{RED}========================= 2 failed, 1 passed in 0.08s =========================={RESET}
##[error]Process completed with exit code 1.
"""

PYTEST_IMPORT = """\
$ pytest
==================================== ERRORS ====================================
_____________________ ERROR collecting tests/test_api.py ______________________
ImportError while importing test module '/home/runner/work/app/app/tests/test_api.py'.
Traceback:
/opt/hostedtoolcache/Python/3.11.7/x64/lib/python3.11/importlib/__init__.py:126: in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
tests/test_api.py:3: in <module>
    import requests
E   ModuleNotFoundError: No module named 'requests'
=========================== short test summary info ============================
ERROR tests/test_api.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
"""

UNITTEST = """\
$ python3 -m unittest
.F
======================================================================
FAIL: test_add (test_calc.CalcTest.test_add)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/home/runner/work/app/app/test_calc.py", line 8, in test_add
    self.assertEqual(add(2, 2), 4)
AssertionError: 5 != 4

======================================================================
ERROR: test_div (test_calc.CalcTest)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/home/runner/work/app/app/calc.py", line 20, in div
    return a / b
ZeroDivisionError: division by zero

----------------------------------------------------------------------
Ran 3 tests in 0.002s

FAILED (failures=1, errors=1)
"""

JEST = f"""\
> app@1.0.0 test
> jest --ci

{RED}{BOLD} FAIL {RESET} src/sum.test.js
  math
    ✓ adds positives (2 ms)
    {RED}✕ adds numbers (3 ms){RESET}

{BOLD}{RED}  ● math › adds numbers{RESET}

    expect(received).toBe(expected) // Object.is equality

    Expected: {RED}4{RESET}
    Received: {RED}5{RESET}

      4 |   test('adds numbers', () => {{
    > 5 |     expect(sum(2, 2)).toBe(4);
        |                       ^
      6 |   }});

      at Object.toBe (src/sum.test.js:5:23)
      at Promise.then.completed (node_modules/jest-circus/build/utils.js:298:28)

Test Suites: 1 failed, 1 total
Tests:       1 failed, 1 passed, 2 total
npm ERR! code ELIFECYCLE
"""

VITEST = """\
 ❯ src/sum.test.ts (2 tests | 1 failed) 5ms
   × math > adds numbers 3ms
     → expected 5 to be 4 // Object.is equality

⎯⎯⎯⎯⎯⎯⎯ Failed Tests 1 ⎯⎯⎯⎯⎯⎯⎯

 FAIL  src/sum.test.ts > math > adds numbers
AssertionError: expected 5 to be 4 // Object.is equality

- Expected
+ Received

 ❯ src/sum.test.ts:5:23
      5|     expect(sum(2, 2)).toBe(4);
       |                       ^
 Test Files  1 failed (1)
"""

NODE_TAP = """\
$ node --test
TAP version 13
# Subtest: adds numbers
not ok 1 - adds numbers
  ---
  location: '/home/runner/work/app/app/test/sum.test.mjs:3:1'
  failureType: 'testCodeFailure'
  name: 'AssertionError'
  ...
# Subtest: ok
ok 2 - ok
"""

GO_TEST = """\
##[group]Run go test -v ./...
=== RUN   TestAdd
    calc_test.go:12: Add(2, 2) = 5, want 4
--- FAIL: TestAdd (0.00s)
=== RUN   TestSub
    calc_test.go:20: a log line from a passing test
--- PASS: TestSub (0.00s)
=== RUN   TestMul
--- FAIL: TestMul (0.00s)
    --- FAIL: TestMul/negative (0.00s)
        calc_test.go:31: Mul(-1, 2) = 2, want -2
FAIL
FAIL	example.com/calc	0.002s
FAIL
##[error]Process completed with exit code 1.
"""

GO_BUILD = """\
# example.com/calc
./calc.go:5:2: undefined: fmtx
FAIL	example.com/calc [build failed]
"""

TSC = """\
> app@1.0.0 typecheck
> tsc --noEmit

src/api.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.
src/api.ts(30,1): error TS2304: Cannot find name 'foo'.
src/api.ts(30,9): error TS2304: Cannot find name 'bar'.
"""

ESLINT = """\
> eslint .

/home/runner/work/app/app/src/index.js
  3:7  error  'unused' is assigned a value but never used  no-unused-vars
  5:1  warning  Unexpected console statement               no-console

/home/runner/work/app/app/src/util.js
  10:3  error  Missing semicolon  semi

✖ 3 problems (2 errors, 1 warning)
"""

MYPY = """\
$ mypy app
app/models.py:12: error: Incompatible types in assignment (expression has type "str", variable has type "int")
app/models.py:13: note: See https://mypy.readthedocs.io
app/views.py:40:9: error: Missing return statement  [return]
Found 2 errors in 2 files (checked 4 source files)
"""

GCC = """\
+ make
gcc -Wall -c main.c -o main.o
main.c: In function 'main':
main.c:12:5: error: 'count' undeclared (first use in this function)
   12 |     count++;
      |     ^~~~~
make: *** [Makefile:4: main.o] Error 1
"""

NPM_INSTALL = """\
##[group]Run npm ci
npm ERR! code E404
npm ERR! 404 Not Found - GET https://registry.npmjs.org/left-padd - Not found
npm ERR! A complete log of this run can be found in: /home/runner/.npm/_logs/debug.log
##[error]Process completed with exit code 1.
"""

PIP_INSTALL = """\
$ pip install -r requirements.txt
Collecting requests==99.0
ERROR: Could not find a version that satisfies the requirement requests==99.0 (from versions: 2.31.0)
ERROR: No matching distribution found for requests==99.0
"""

KILLED = """\
##[group]Run python train.py
Epoch 1/10
/home/runner/work/_temp/3f1c.sh: line 1:  1234 Killed                  python train.py
##[error]Process completed with exit code 137.
"""

TIMEOUT = """\
##[group]Run ./integration.sh
waiting for the database
##[error]The job running on runner GitHub Actions 2 has exceeded the maximum execution time of 360 minutes.
##[error]The operation was canceled.
"""

# (id, log, kind, failing tests, locations, first error line's text, command)
CASES = [
    ("pytest", stamped(PYTEST), "test failure",
     ["tests/test_calc.py::test_add", "tests/test_calc.py::test_add[two words]"], ["tests/test_calc.py:12"], "E       assert 5 == 4", "python -m pytest -q"),
    ("pytest-import", PYTEST_IMPORT, "dependency", ["tests/test_api.py"], ["tests/test_api.py:3"],
     "E   ModuleNotFoundError: No module named 'requests'", "pytest"),
    ("unittest", UNITTEST, "test failure", ["test_calc.CalcTest.test_add", "test_calc.CalcTest.test_div"],
     ["test_calc.py:8", "calc.py:20"], "FAIL: test_add (test_calc.CalcTest.test_add)", "python3 -m unittest"),
    ("jest", JEST, "test failure", ["math › adds numbers"], ["src/sum.test.js:5"], "  ● math › adds numbers",
     "jest --ci"),
    ("vitest", VITEST, "test failure", ["src/sum.test.ts > math > adds numbers"], ["src/sum.test.ts:5"],
     " FAIL  src/sum.test.ts > math > adds numbers", None),
    ("node-test", NODE_TAP, "test failure", ["adds numbers"], ["test/sum.test.mjs:3"], "not ok 1 - adds numbers",
     "node --test"),
    ("go-test", stamped(GO_TEST), "test failure", ["TestAdd", "TestMul", "TestMul/negative"],
     ["calc_test.go:12", "calc_test.go:31"], "--- FAIL: TestAdd (0.00s)", "go test -v ./..."),
    ("go-build", GO_BUILD, "build", [], ["calc.go:5"], "./calc.go:5:2: undefined: fmtx", None),
    ("tsc", TSC, "type error", [], ["src/api.ts:12", "src/api.ts:30"],
     "src/api.ts(12,5): error TS2322: Type 'string' is not assignable to type 'number'.", "tsc --noEmit"),
    ("eslint", ESLINT, "lint", [], ["src/index.js:3", "src/util.js:10"],
     "  3:7  error  'unused' is assigned a value but never used  no-unused-vars", "eslint ."),
    ("mypy", MYPY, "type error", [], ["app/models.py:12", "app/views.py:40"],
     'app/models.py:12: error: Incompatible types in assignment (expression has type "str", variable has type '
     '"int")', "mypy app"),
    ("gcc", GCC, "build", [], ["main.c:12"], "main.c:12:5: error: 'count' undeclared (first use in "
                                                            "this function)", "make"),
    ("npm-install", stamped(NPM_INSTALL), "dependency", [], [], "npm ERR! code E404", "npm ci"),
    ("pip-install", PIP_INSTALL, "dependency", [], [],
     "ERROR: Could not find a version that satisfies the requirement requests==99.0 (from versions: 2.31.0)",
     "pip install -r requirements.txt"),
    ("killed", stamped(KILLED), "infrastructure/flaky", [], [],
     "/home/runner/work/_temp/3f1c.sh: line 1:  1234 Killed                  python train.py", "python train.py"),
    ("timeout", stamped(TIMEOUT), "infrastructure/flaky", [], [],
     "The job running on runner GitHub Actions 2 has exceeded the maximum execution time of 360 minutes.",
     "./integration.sh"),
]


@pytest.mark.parametrize("log,kind,tests,locations,first,command", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_tool(log: str, kind: str, tests: list[str], locations: list[str], first: str,
                   command: str | None) -> None:
    report = analyse(log)
    assert report["kind"] == kind
    assert report["failing_tests"] == tests
    assert report["locations"] == locations
    assert report["first_error"]["text"] == first
    assert report["command"] == command


def test_the_first_error_block_is_five_lines_either_side_of_the_cleaned_log() -> None:
    report = analyse(stamped(PYTEST))
    error = report["first_error"]
    lines = PYTEST.replace(RED, "").replace(BOLD, "").replace(RESET, "").splitlines()
    at = lines.index("E       assert 5 == 4")
    assert error["line"] == at + 1 and error["block_start"] == at - 4
    assert error["block"] == lines[at - 5:at + 6]
    assert not any("\x1b" in line or "2024-05-01" in line for line in error["block"])


def test_exit_codes_and_kinds_seen() -> None:
    assert analyse(stamped(KILLED))["exit_code"] == 137
    assert analyse(GCC)["exit_code"] == 1
    report = analyse(PYTEST_IMPORT)
    assert report["kind"] == "dependency"
    assert report["kinds"] == ["dependency", "test failure"]  # what pytest quotes, then the ERROR summary line


def test_progress_lines_keep_their_last_state() -> None:
    log = "Downloading 10%\rDownloading 100%\r\nERROR: No matching distribution found for nope\n"
    report = analyse(log)
    assert report["first_error"]["text"] == "ERROR: No matching distribution found for nope"
    assert report["first_error"]["block"][0] == "Downloading 100%"


def test_a_log_with_no_error() -> None:
    report = analyse("all good\n5 passed\n")
    assert report["kind"] == "unknown" and report["first_error"] is None and report["failing_tests"] == []
    done = subprocess.run([sys.executable, str(SCRIPT)], input=b"all good\n", capture_output=True, timeout=60)
    assert done.returncode == 0 and "No error line recognised" in done.stdout.decode()


def test_paths_under_the_current_folder_are_shown_relative(tmp_path: Path) -> None:
    log = f'Traceback (most recent call last):\n  File "{tmp_path}/pkg/mod.py", line 7, in f\nValueError: bad\n'
    report = analyse(log, cwd=tmp_path)
    assert report["locations"] == ["pkg/mod.py:7"]
    assert report["kind"] == "unknown"  # an exception with no failing test and no known tool


def test_text_output_from_a_file(tmp_path: Path) -> None:
    log = tmp_path / "ci.log"
    log.write_text(stamped(PYTEST), encoding="utf-8")
    done = subprocess.run([sys.executable, str(SCRIPT), str(log)], capture_output=True, text=True, timeout=60,
                          check=True)
    out = done.stdout
    assert out.startswith("Kind: test failure\nCommand: python -m pytest -q\nExit code: 1\n")
    assert "Failing tests (2):\n  tests/test_calc.py::test_add\n" in out
    assert "Locations (1):\n  tests/test_calc.py:12\n" in out
    assert ">     12 | E       assert 5 == 4" in out
    assert "\x1b" not in out


def test_usage_and_unreadable_file(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: ci_failure.py" in done.stdout and "--json" in done.stdout
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "missing.log")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_the_skill_folder_passes_the_strict_check() -> None:
    problems = [p for p in check_dir(REPO_ROOT / "skills", "built-in") if Path(p.path).name == "fix-ci"]
    assert problems == []
    assert (REPO_ROOT / "skills" / "fix-ci" / "SKILL.md").is_file()
