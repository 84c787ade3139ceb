#!/usr/bin/env python3
"""Where a project's tests are thin, and the command that runs them.

Detects the languages (Python, JavaScript/TypeScript, Go) and their test layout, then lists:
  - source files with no matching test file (none named after it, none importing it), biggest first;
  - public Python functions and classes whose name appears in no test file, with file:line.
Both are cheap, name-based signals: a hint where to look, not coverage.
Standard library only; reads files, runs nothing.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

SKIP_DIRS = {"node_modules", "venv", "env", "__pycache__", "dist", "build", "vendor", "third_party", "coverage",
             "site-packages", "testdata", "migrations", "target", "out"}  # and every hidden folder
TEST_DIRS = {"tests", "test", "__tests__", "spec"}
JS_EXT = (".js", ".jsx", ".ts", ".tsx", ".mjs", ".cjs", ".mts", ".cts")
JS_TEST = re.compile(r"\.(?:test|spec)\.[cm]?[jt]sx?$")
JS_NOT_SOURCE = re.compile(r"(?:\.d\.[cm]?ts|\.config\.[cm]?[jt]s|^\.?eslintrc\.[cm]?js|^\.prettierrc\.[cm]?js)$")
JS_IMPORT = re.compile(r"""(?:\bfrom\s+|\brequire\(\s*|\bimport\(\s*|\bimport\s+)['"]([^'"]+)['"]""")
PY_NOT_SOURCE = {"__init__.py", "setup.py", "conftest.py", "__main__.py", "manage.py", "noxfile.py"}
NPM_DEFAULT_TEST = "no test specified"
JS_RUNNERS = ("vitest", "jest", "mocha", "ava", "tap", "node --test")
LABELS = {"python": "Python", "javascript": "JavaScript/TypeScript", "go": "Go"}


def language(rel: Path) -> str | None:
    if rel.suffix == ".py":
        return "python"
    if rel.suffix == ".go":
        return "go"
    if rel.name.endswith(JS_EXT) and not JS_NOT_SOURCE.search(rel.name):
        return "javascript"
    return None


def is_test(rel: Path, lang: str) -> bool:
    in_test_dir = any(part in TEST_DIRS for part in rel.parts[:-1])
    if lang == "python":
        return rel.name.startswith("test_") or rel.name.endswith("_test.py") or rel.name == "conftest.py" or in_test_dir
    if lang == "javascript":
        return bool(JS_TEST.search(rel.name)) or in_test_dir
    return rel.name.endswith("_test.go")


def subject(rel: Path) -> str:
    """What a test file is named after: test_foo.py, foo_test.py, foo.test.ts, foo_test.go -> foo."""
    name = JS_TEST.sub("", rel.name)
    name = name.split(".")[0] if name == rel.name else name
    return name.removeprefix("test_").removesuffix("_test")


def walk(root: Path) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
        found += [Path(folder, f).relative_to(root) for f in sorted(files)]
    return found


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def python_imports(text: str) -> set[str]:
    """Dotted names a test imports: `from pkg import mod` gives pkg and pkg.mod."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            names |= {base} | {f"{base}.{a.name}".lstrip(".") for a in node.names}
    return names - {""}


def python_tested(rel: Path, subjects: set[str], imports: set[str]) -> bool:
    stem = rel.stem
    if any(f"_{stem}_" in f"_{s}_" for s in subjects):
        return True
    dotted = ".".join(rel.with_suffix("").parts)
    return any(i == dotted or ("." in i and dotted.endswith("." + i)) for i in imports)


def js_tested(rel: Path, subjects: set[str], imported: set[str]) -> bool:
    if re.sub(r"\.[cm]?[jt]sx?$", "", rel.name) in subjects:
        return True
    bare = str(rel.with_suffix(""))
    return bare in imported or (rel.stem == "index" and str(rel.parent) in imported)


def js_imports(rel: Path, text: str) -> set[str]:
    """Relative imports of a test file, as paths from the root without extension."""
    specs = [s for s in JS_IMPORT.findall(text) if s.startswith(".")]
    return {re.sub(r"\.[cm]?[jt]sx?$", "", os.path.normpath(os.path.join(str(rel.parent), s))) for s in specs}


def python_command(root: Path, tests: list[Path], texts: dict[Path, str]) -> tuple[str, str]:
    """(framework, command): pytest when configured or used, else unittest; the project's venv if it has one."""
    py = next((f"{d}/bin/python" for d in (".venv", "venv") if (root / d / "bin" / "python").exists()), "python3")
    config = read(root / "pyproject.toml") + read(root / "setup.cfg") + read(root / "tox.ini")
    uses_pytest = ((root / "pytest.ini").exists() or any(t.name == "conftest.py" for t in tests)
                   or re.search(r"\[tool\.pytest|\[tool:pytest\]|\[pytest\]", config)
                   or any(re.search(r"^(?:\s*(?:import|from) pytest\b|(?:async )?def test)", texts[t], re.M)
                          for t in tests))  # bare test functions: only pytest runs them
    if uses_pytest:
        return "pytest", f"{py} -m pytest"
    if not tests:  # nothing to go on: the standard library's runner works everywhere
        return "", f"{py} -m unittest"
    pattern = ' -p "*_test.py"' if tests and all(t.name.endswith("_test.py") for t in tests) else ""
    if (root / "tests").is_dir() and not (root / "tests" / "__init__.py").exists():
        return "unittest", f"{py} -m unittest discover -s tests{pattern}"
    return "unittest", f"{py} -m unittest{' discover' + pattern if pattern else ''}"


def js_command(root: Path) -> tuple[str, str]:
    """(framework, command) from package.json: its test script through the package manager its lock file names,
    else the runner among its dependencies, else node's built-in runner."""
    try:
        package = json.loads(read(root / "package.json") or "{}")
    except json.JSONDecodeError:
        package = {}
    package = package if isinstance(package, dict) else {}
    script = str((package.get("scripts") or {}).get("test") or "")
    deps = {**(package.get("devDependencies") or {}), **(package.get("dependencies") or {})}
    framework = next((r for r in JS_RUNNERS if re.search(rf"\b{r}\b", script)), "") \
        or next((r for r in JS_RUNNERS if r in deps), "")
    framework = "node:test" if framework == "node --test" else framework
    if script and NPM_DEFAULT_TEST not in script:
        locks = {"pnpm-lock.yaml": "pnpm", "yarn.lock": "yarn", "bun.lockb": "bun", "bun.lock": "bun"}
        runner = next((tool for lock, tool in locks.items() if (root / lock).exists()), "npm")
        return framework or "package.json script", f"{runner} test"
    if framework in ("vitest", "jest", "mocha", "ava", "tap"):
        return framework, "npx vitest run" if framework == "vitest" else f"npx {framework}"
    return "node:test", "node --test"


def survey(root: Path) -> dict[str, Any]:
    """The report: per language its framework, command, test files and untested files; unreferenced names."""
    files = [(rel, language(rel)) for rel in walk(root)]
    files = [(rel, lang) for rel, lang in files if lang]
    has_js_project = (root / "package.json").exists() or (root / "tsconfig.json").exists()
    langs: dict[str, dict[str, Any]] = {}
    unreferenced: list[dict[str, Any]] = []
    for lang in ("python", "javascript", "go"):
        mine = [rel for rel, lg in files if lg == lang]
        tests = [rel for rel in mine if is_test(rel, lang)]
        if not mine or (lang == "javascript" and not has_js_project and not tests):
            continue
        sources = [rel for rel in mine if not is_test(rel, lang) and rel.name not in PY_NOT_SOURCE]
        texts = {rel: read(root / rel) for rel in tests}
        subjects = {subject(t) for t in tests}
        if lang == "python":
            imports = set().union(*(python_imports(texts[t]) for t in tests))
            untested = [s for s in sources if not python_tested(s, subjects, imports)]
            framework, command = python_command(root, tests, texts)
            words = set(re.findall(r"[A-Za-z_]\w*", "\n".join(texts.values())))
            unreferenced += never_named(root, sources, words)
        elif lang == "javascript":
            imported = set().union(*(js_imports(t, texts[t]) for t in tests))
            untested = [s for s in sources if not js_tested(s, subjects, imported)]
            framework, command = js_command(root)
        else:
            by_dir = {(t.parent, subject(t)) for t in tests}
            untested = [s for s in sources if (s.parent, s.stem) not in by_dir]
            framework, command = "go test", "go test ./..."
        sizes = {s: read(root / s).count("\n") + 1 for s in untested}
        untested.sort(key=lambda s: (-sizes[s], str(s)))
        langs[lang] = {"framework": framework, "command": command, "source_files": len(sources),
                       "test_files": [str(t) for t in tests],
                       "untested_files": [{"file": str(s), "lines": sizes[s]} for s in untested]}
    make = read(root / "Makefile")
    return {"root": str(root), "languages": langs, "unreferenced": unreferenced,
            "make_test": bool(re.search(r"^test\s*:", make, re.M))}


def never_named(root: Path, sources: list[Path], words: set[str]) -> list[dict[str, Any]]:
    """Public top-level functions and classes whose name no test file contains."""
    found = []
    for rel in sources:
        try:
            tree = ast.parse(read(root / rel))
        except (SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                    and not node.name.startswith("_") and node.name not in words:
                kind = "class" if isinstance(node, ast.ClassDef) else "function"
                found.append({"file": str(rel), "line": node.lineno, "kind": kind, "name": node.name})
    return found


def show(report: dict[str, Any], limit: int) -> str:
    langs = report["languages"]
    if not langs:
        return f"No Python, JavaScript/TypeScript or Go files found under {report['root']}."
    out = ["Languages: " + ", ".join(f"{LABELS[k]} ({v['framework'] or 'no tests yet'})" for k, v in langs.items()),
           "Test commands:"]
    out += [f"  {v['command']}" for v in langs.values()] + (["  make test"] if report["make_test"] else [])
    for lang, info in langs.items():
        untested = info["untested_files"]
        out += ["", f"{LABELS[lang]}: {len(info['test_files'])} test files, {info['source_files']} source files, "
                    f"{len(untested)} with no matching test file (biggest first):"]
        out += [f"  {u['file']}  ({u['lines']} lines)" for u in untested[:limit]]
        out += [f"  … and {len(untested) - limit} more"] if len(untested) > limit else []
    names = report["unreferenced"]
    if "python" in langs:
        out += ["", f"Public Python functions and classes no test file names ({len(names)}):"]
        out += [f"  {n['file']}:{n['line']}  {n['kind']} {n['name']}" for n in names[:limit]]
        out += [f"  … and {len(names) - limit} more"] if len(names) > limit else []
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="List source files with no matching test file, public Python functions and classes no test "
                    "names (file:line), and the detected test command. Python, JavaScript/TypeScript and Go.")
    parser.add_argument("path", nargs="?", default=".", help="project root (default: the current folder)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--limit", type=int, default=50, help="entries shown per list in text output (default 50)")
    args = parser.parse_args(argv)
    root = Path(args.path)
    if not root.is_dir():
        print(f"untested.py: {root} is not a folder", file=sys.stderr)
        return 2
    report = survey(root)
    print(json.dumps(report, indent=2) if args.json else show(report, max(args.limit, 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
