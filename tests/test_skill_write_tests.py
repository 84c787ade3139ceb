"""The built-in write-tests skill: untested.py finds the test layout, the untested files, the public Python names
no test mentions and the test command, in small Python, JavaScript and Go projects built in tmp_path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slackbot.agent.skills import check_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "skills" / "write-tests" / "scripts" / "untested.py"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(root), *args], capture_output=True, text=True,
                          timeout=60)


def survey(root: Path) -> dict:
    done = run(root, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def python_project(root: Path) -> Path:
    return write(root, {
        "pkg/__init__.py": "",
        "pkg/calc.py": "def add(a, b):\n    return a + b\n\n\nclass Widget:\n    pass\n\n\n"
                       "def unreferenced_helper():\n    return 1\n\n\ndef _private():\n    return 2\n",
        "pkg/helpers.py": "def shout(text):\n    return text.upper()\n",  # tested only through an import
        "pkg/lonely.py": "import os\n\n\nasync def fetch():\n    return os.sep\n",
        "tests/test_calc.py": "from pkg import helpers\nfrom pkg.calc import Widget, add\n\n\n"
                              "def test_add():\n    assert add(1, 2) == 3\n    assert helpers.shout('a') == 'A'\n"
                              "    Widget()\n",
        ".venv/lib/site.py": "def not_the_project():\n    pass\n",  # hidden folders are skipped
        "node_modules/junk.js": "module.exports = 1\n",
    })


def test_python_pytest_project(tmp_path: Path) -> None:
    report = survey(python_project(tmp_path))
    assert list(report["languages"]) == ["python"]  # stray JS without package.json is not a JS project
    py = report["languages"]["python"]
    assert py["framework"] == "pytest" and py["command"] == "python3 -m pytest"  # bare test functions: pytest
    assert py["test_files"] == ["tests/test_calc.py"]
    assert py["source_files"] == 3
    assert py["untested_files"] == [{"file": "pkg/lonely.py", "lines": 6}]
    assert report["unreferenced"] == [
        {"file": "pkg/calc.py", "line": 9, "kind": "function", "name": "unreferenced_helper"},
        {"file": "pkg/lonely.py", "line": 4, "kind": "function", "name": "fetch"},
    ]


def test_python_text_output_and_the_project_venv(tmp_path: Path) -> None:
    root = python_project(tmp_path)
    write(root, {".venv/bin/python": "", "Makefile": "test:\n\tpytest\n"})
    done = run(root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:4] == ["Languages: Python (pytest)", "Test commands:",
                                            "  .venv/bin/python -m pytest", "  make test"]
    assert "1 test files, 3 source files, 1 with no matching test file" in done.stdout
    assert "\n  pkg/lonely.py  (6 lines)\n" in done.stdout
    assert "\n  pkg/calc.py:9  function unreferenced_helper\n" in done.stdout
    assert "_private" not in done.stdout and "not_the_project" not in done.stdout


def test_python_unittest_project(tmp_path: Path) -> None:
    write(tmp_path, {
        "shop/cart.py": "class Cart:\n    pass\n",
        "shop/tax.py": "def vat(x):\n    return x * 0.2\n",
        "tests/test_cart.py": "import unittest\nfrom shop.cart import Cart\n\n\nclass CartTest(unittest.TestCase):\n"
                              "    def test_empty(self):\n        Cart()\n",
    })
    report = survey(tmp_path)
    py = report["languages"]["python"]
    assert py["framework"] == "unittest"
    assert py["command"] == "python3 -m unittest discover -s tests"
    assert [u["file"] for u in py["untested_files"]] == ["shop/tax.py"]
    assert [(n["file"], n["line"], n["kind"], n["name"]) for n in report["unreferenced"]] == [
        ("shop/tax.py", 1, "function", "vat")]


def test_python_pytest_config_and_suffix_tests(tmp_path: Path) -> None:
    write(tmp_path, {
        "pyproject.toml": "[tool.pytest.ini_options]\ntestpaths = ['.']\n",
        "app/parse.py": "def parse(s):\n    return s\n",
        "app/parse_test.py": "from app.parse import parse\n\n\ndef check():\n    parse('')\n",
    })
    py = survey(tmp_path)["languages"]["python"]
    assert py["framework"] == "pytest" and py["test_files"] == ["app/parse_test.py"] and py["untested_files"] == []


def test_python_without_tests(tmp_path: Path) -> None:
    write(tmp_path, {"app.py": "def main():\n    pass\n"})
    report = survey(tmp_path)
    assert report["languages"]["python"]["framework"] == ""
    assert report["languages"]["python"]["command"] == "python3 -m unittest"  # needs nothing installed
    assert report["unreferenced"] == [{"file": "app.py", "line": 1, "kind": "function", "name": "main"}]
    assert run(tmp_path).stdout.startswith("Languages: Python (no tests yet)\n")


def test_javascript_project(tmp_path: Path) -> None:
    write(tmp_path, {
        "package.json": json.dumps({"scripts": {"test": "jest --ci"}, "devDependencies": {"jest": "^29.0.0"}}),
        "jest.config.js": "module.exports = {}\n",
        "src/sum.js": "module.exports = (a, b) => a + b\n",
        "src/sum.test.js": "const sum = require('./sum')\ntest('adds', () => expect(sum(1, 2)).toBe(3))\n",
        "src/index.js": "export * from './format'\n",
        "src/format.ts": "export const money = (n: number) =>\n  n.toFixed(2)\n\nexport const pct = (n: number) =>"
                         " `${n}%`\n",
        "src/types.d.ts": "export type Money = number\n",
        "__tests__/app.test.js": "import * as app from '../src/index'\n",
        "node_modules/jest/index.js": "module.exports = {}\n",
    })
    report = survey(tmp_path)
    js = report["languages"]["javascript"]
    assert js["framework"] == "jest" and js["command"] == "npm test"
    assert js["test_files"] == ["__tests__/app.test.js", "src/sum.test.js"]
    assert js["source_files"] == 3
    assert js["untested_files"] == [{"file": "src/format.ts", "lines": 5}]
    assert report["unreferenced"] == []  # that list is for Python only

    write(tmp_path, {"pnpm-lock.yaml": ""})
    assert survey(tmp_path)["languages"]["javascript"]["command"] == "pnpm test"


def test_javascript_without_a_test_script(tmp_path: Path) -> None:
    write(tmp_path, {
        "package.json": json.dumps({"scripts": {"test": "echo \"Error: no test specified\" && exit 1"},
                                    "devDependencies": {"vitest": "^1.0.0"}}),
        "lib/a.spec.ts": "import { a } from './a'\n",
        "lib/a.ts": "export const a = 1\n",
    })
    js = survey(tmp_path)["languages"]["javascript"]
    assert js["framework"] == "vitest" and js["command"] == "npx vitest run" and js["untested_files"] == []


def test_go_module(tmp_path: Path) -> None:
    write(tmp_path, {
        "go.mod": "module example.com/calc\n\ngo 1.22\n",
        "calc/calc.go": "package calc\n\nfunc Add(a, b int) int { return a + b }\n",
        "calc/calc_test.go": "package calc\n\nimport \"testing\"\n\nfunc TestAdd(t *testing.T) {}\n",
        "calc/parse.go": "package calc\n\n" + "// line\n" * 10,
        "main.go": "package main\n\nfunc main() {}\n",
        "vendor/x/x.go": "package x\n",
        "testdata/t.go": "package t\n",
    })
    report = survey(tmp_path)
    go = report["languages"]["go"]
    assert go["framework"] == "go test" and go["command"] == "go test ./..."
    assert go["test_files"] == ["calc/calc_test.go"]
    assert go["untested_files"] == [{"file": "calc/parse.go", "lines": 13}, {"file": "main.go", "lines": 4}]


def test_many_languages_and_limits(tmp_path: Path) -> None:
    python_project(tmp_path)
    write(tmp_path, {"go.mod": "module m\n", "a.go": "package m\n", "b.go": "package m\n",
                     "package.json": "{}", "web/app.js": "x()\n"})
    report = survey(tmp_path)
    assert list(report["languages"]) == ["python", "javascript", "go"]
    assert report["languages"]["javascript"]["command"] == "node --test"
    done = run(tmp_path, "--limit", "1")
    assert "Languages: Python (pytest), JavaScript/TypeScript (node:test), Go (go test)" in done.stdout
    assert "  python3 -m pytest\n  node --test\n  go test ./...\n" in done.stdout
    assert "  … and 1 more" in done.stdout  # two untested Go files, one shown


def test_empty_folder_and_bad_path(tmp_path: Path) -> None:
    done = run(tmp_path)
    assert done.returncode == 0 and "No Python, JavaScript/TypeScript or Go files" in done.stdout
    done = run(tmp_path / "missing")
    assert done.returncode == 2 and "is not a folder" in done.stderr
    done = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "usage: untested.py" in done.stdout and "--json" in done.stdout


def test_the_skill_folder_passes_the_strict_check() -> None:
    problems = [p for p in check_dir(REPO_ROOT / "skills", "built-in") if Path(p.path).name == "write-tests"]
    assert problems == []
    assert (REPO_ROOT / "skills" / "write-tests" / "SKILL.md").is_file()
