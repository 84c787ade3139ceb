#!/usr/bin/env python3
"""Outline a source file or folder for someone new to it. Reads files only; runs nothing.

Python files (via ast): docstring, imports grouped stdlib / third-party / local, classes and methods,
functions with signatures, line ranges, first docstring lines, constants, and the repository's files
that import the module. Folders: files with sizes and first docstring or comment line, and entry points
(__main__.py, main(), console scripts in pyproject.toml, package.json bin/main). JS/TS, Go, Rust, Java
and Kotlin files: a regex outline of classes, functions and exports. Python 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

MAX_FILES = 200  # a folder lists at most this many files
MAX_BYTES = 1024 * 1024
SKIP_DIRS = {".git", "node_modules", "vendor", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache",
             ".pytest_cache", "dist", "build", "target"}
LANGS = {".js": "js", ".jsx": "js", ".mjs": "js", ".cjs": "js", ".ts": "js", ".tsx": "js", ".go": "go",
         ".rs": "rust", ".java": "java", ".kt": "java"}
JS_EXPORT = r"(?P<pub>export\s+(?:default\s+)?)?"
RUST_PUB = r"(?P<pub>pub(?:\([^)]*\))?\s+)?"
JAVA_MODS = (r"(?:(?:public|protected|private|internal|static|final|abstract|sealed|open|data|override|suspend|"
             r"synchronized)\s+)*")
PATTERNS = {  # (kind, pattern): groups `name`, `sig`, and `pub` where exporting is spelled out
    "js": [("class", JS_EXPORT + r"(?:abstract\s+)?class\s+(?P<name>\w+)(?P<sig>\s+extends\s+[\w.]+)?"),
           ("function", JS_EXPORT + r"(?:async\s+)?function\s*\*?\s*(?P<name>\w+)\s*(?P<sig>\([^)]*\))"),
           ("function", JS_EXPORT + r"(?:const|let|var)\s+(?P<name>\w+)\s*(?::[^=]+)?=\s*(?:async\s+)?"
                                    r"(?P<sig>\([^)]*\)|\w+)\s*(?::[^=]+)?=>"),
           ("type", JS_EXPORT + r"(?:declare\s+)?(?:interface|type|enum)\s+(?P<name>\w+)"),
           ("export", r"(?:module\.exports\s*=\s*(?P<sig>.*)|exports\.(?P<name>\w+)\s*=|export\s*(?P<list>\{[^}]*\}))"),
           ("method", r"(?:(?:public|private|protected|static|async|readonly|override|get|set)\s+)*"
                      r"(?P<name>(?!(?:if|for|while|switch|catch|return|function|else)\b)\w+)\s*(?P<sig>\([^)]*\))"
                      r"\s*(?::[^{]+)?\{\s*$")],
    "go": [("function", r"func\s+(?:\(\s*\w*\s*\*?(?P<recv>\w+)[^)]*\)\s*)?(?P<name>\w+)\s*"
                        r"(?P<sig>\([^{]*?)\s*(?:\{.*)?$"),
           ("type", r"type\s+(?P<name>\w+)\s+(?P<sig>struct|interface|[\w.\[\]*]+)")],
    "rust": [("function", RUST_PUB + r"(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?(?:extern\s+\"\w+\"\s+)?fn\s+"
                                     r"(?P<name>\w+)(?P<sig>[^{;]*)"),
             ("type", RUST_PUB + r"(?:struct|enum|trait|type|union)\s+(?P<name>\w+)"),
             ("impl", r"impl\b(?:<[^>]*>)?\s*(?P<name>[^{]+?)\s*(?:where\b.*)?\{"),
             ("module", RUST_PUB + r"mod\s+(?P<name>\w+)")],
    "java": [("class", JAVA_MODS + r"(?:class|interface|enum|record|object)\s+(?P<name>\w+)"),
             ("method", JAVA_MODS + r"fun\s+(?:<[^>]+>\s*)?(?:[\w.]+\.)?(?P<name>\w+)\s*(?P<sig>\([^)]*\)[^{=]*)"),
             ("method", JAVA_MODS + r"(?:<[^>]+>\s+)?[\w<>\[\],.? ]+\s+(?P<name>(?!(?:new|return|else)\b)\w+)\s*"
                                    r"(?P<sig>\([^)]*\))\s*(?:throws\s+[\w., ]+)?\s*\{?\s*$")],
}
MAIN = re.compile(r"(?:async\s+)?def main\s*\(|func main\(\)|fn main\(\)|\s*public static void main\(|fun main\(")
MAIN_GUARD = re.compile(r"if __name__ == ['\"]__main__['\"]")


def run_git(folder: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, check=True,
                              timeout=60).stdout.decode("utf-8", "surrogateescape")
    except (OSError, subprocess.SubprocessError):
        return None


def list_files(folder: Path) -> list[Path]:
    """Files under `folder`: git's tracked and unignored ones, else a walk; skipped folders left out."""
    out = run_git(folder, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    rels = sorted({p for p in out.split("\0") if p}) if out is not None else []
    for top, dirs, files in os.walk(folder) if out is None else ():
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not (Path(top, d) / "pyvenv.cfg").exists())
        rels += [os.path.relpath(os.path.join(top, f), folder) for f in sorted(files)]
    return [folder / r for r in rels if not SKIP_DIRS.intersection(Path(r).parts[:-1]) and (folder / r).is_file()]


def read(path: Path) -> str:
    """The file's text; "" for binaries, unreadable files and files over 1 MB."""
    try:
        data = path.read_bytes() if path.stat().st_size <= MAX_BYTES else b""
    except OSError:
        return ""
    return "" if b"\0" in data[:8192] else data.decode("utf-8", "replace")


def show(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip()[:160] if doc and doc.strip() else ""


def module_name(path: Path) -> str:
    """The dotted name it is imported by: up through the folders that hold an __init__.py."""
    parts, folder = [] if path.name in ("__init__.py", "__main__.py") else [path.stem], path.resolve().parent
    while (folder / "__init__.py").exists():
        parts, folder = [folder.name, *parts], folder.parent
    return ".".join(parts)


def imported(text: str, package: str) -> list[tuple[str, int]]:
    """(module, line) for each module Python source may import; `package` resolves relative imports."""
    found = []
    for m in re.finditer(r"^[ \t]*(?:import\s+([\w., \t]+)|from\s+(\.*)([\w.]*)\s+import\s+(\([^)]*\)|[^\n]*))",
                         text, re.M):
        line = text.count("\n", 0, m.start()) + 1
        if m.group(1):
            found += [(n.split()[0], line) for n in m.group(1).split(",") if n.strip()]
            continue
        base, dots = m.group(3), len(m.group(2))
        if dots:
            parts = package.split(".") if package else []
            base = ".".join(parts[:len(parts) - dots + 1] + ([base] if base else []))
        names = re.sub(r"#[^\n]*", "", m.group(4)).strip("() \n")
        found += [(base, line)] + [(f"{base}.{n.split()[0]}", line) for n in names.split(",") if n.split()]
    return found


def importers(target: Path, root: Path) -> list[str]:
    """path:line of each import of `target`'s module in the repository's Python files."""
    name, hits = module_name(target), []
    for path in list_files(root):
        if path.suffix == ".py" and path.resolve() != target.resolve():
            package = module_name(path.parent / "__init__.py")  # where its relative imports start
            lines = sorted({line for module, line in imported(read(path), package) if module == name})
            hits += [f"{show(path, root)}:{line}" for line in lines]
    return hits


def import_group(module: str, level: int, path: Path, root: Path) -> str:
    """Relative or found in the repository: local; in sys.stdlib_module_names: stdlib; else third-party."""
    top = module.split(".")[0]
    if level or not top:
        return "local"
    if top in sys.stdlib_module_names:
        return "stdlib"
    places = (root, root / "src", path.parent)
    return "local" if any((p / top).is_dir() or (p / f"{top}.py").is_file() for p in places) else "third_party"


def function(node: ast.FunctionDef | ast.AsyncFunctionDef) -> dict:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return {"name": node.name, "signature": f"({ast.unparse(node.args)}){returns}", "line": node.lineno,
            "end_line": node.end_lineno, "async": isinstance(node, ast.AsyncFunctionDef),
            "doc": first_line(ast.get_docstring(node)), "decorators": [ast.unparse(d) for d in node.decorator_list]}


def outline_python(path: Path, root: Path) -> dict:
    text = read(path)
    imports: dict[str, list[dict]] = {"stdlib": [], "third_party": [], "local": []}
    out: dict = {"kind": "python", "path": show(path, root), "module": module_name(path),
                 "lines": len(text.splitlines()), "doc": "", "imports": imports, "classes": [], "functions": [],
                 "constants": [], "main_guard": None, "importers": importers(path, root)}
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        out["error"] = f"not valid Python at line {exc.lineno}: {exc.msg}"
        return out
    out["doc"] = "\n".join((ast.get_docstring(tree) or "").strip().split("\n\n")[0].splitlines()[:5])
    for node in ast.walk(tree):  # imports anywhere, lazy ones inside functions too
        if isinstance(node, ast.Import):
            for a in node.names:
                group = imports[import_group(a.name, 0, path, root)]
                group.append({"module": a.name, "names": [], "line": node.lineno})
        elif isinstance(node, ast.ImportFrom):
            imports[import_group(node.module or "", node.level, path, root)].append(
                {"module": "." * node.level + (node.module or ""), "names": [a.name for a in node.names],
                 "line": node.lineno})
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out["classes"].append({"name": node.name, "line": node.lineno, "end_line": node.end_lineno,
                                   "bases": [ast.unparse(b) for b in node.bases],
                                   "decorators": [ast.unparse(d) for d in node.decorator_list],
                                   "doc": first_line(ast.get_docstring(node)),
                                   "methods": [function(n) for n in node.body
                                               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]})
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out["functions"].append(function(node))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out["constants"] += [{"name": t.id, "line": node.lineno} for t in targets
                                 if isinstance(t, ast.Name) and re.fullmatch(r"_?[A-Z][A-Z0-9_]*", t.id)]
        elif isinstance(node, ast.If) and MAIN_GUARD.fullmatch("if " + ast.unparse(node.test)):
            out["main_guard"] = node.lineno
    return out


def comment_above(lines: list[str], index: int) -> str:
    """The first line of the comment block just above lines[index]."""
    text, i = "", index - 1
    while i >= 0 and index - i <= 20 and re.match(r"\s*(?://|/\*|\*|#\[)", lines[i]):
        text = re.sub(r"^\s*(?:///?|/\*\*?|\*/?|#\[.*)\s*|\*/\s*$", "", lines[i]).strip() or text
        i -= 1
        if re.match(r"\s*/\*", lines[i + 1]):  # a block comment's first line: what is above is not this one's
            break
    return text[:160]


def outline_regex(path: Path, root: Path) -> dict:
    lang, lines = LANGS[path.suffix], read(path).splitlines()
    items, in_class = [], False
    for i, line in enumerate(lines):
        for kind, pattern in PATTERNS[lang]:
            m = re.match(r"\s*" + pattern, line)
            if not m or (kind == "method" and lang == "js" and not (in_class and line[:1].isspace())):
                continue
            g = m.groupdict()
            name = g.get("name") or ("module.exports" if g.get("sig") is not None else "export")
            public = {"js": bool(g.get("pub")) or kind in ("export", "method") and "private" not in line,
                      "go": name[:1].isupper(), "rust": bool(g.get("pub")), "java": "private" not in line}[lang]
            in_class = in_class or kind == "class"
            items.append({"kind": kind, "name": f"{g['recv']}.{name}" if g.get("recv") else name.strip(),
                          "signature": (g.get("sig") or g.get("list") or "").strip()[:160], "line": i + 1,
                          "exported": public, "doc": comment_above(lines, i)})
            break
    return {"kind": lang, "path": show(path, root), "lines": len(lines), "items": items}


def summary(path: Path) -> str:
    """A file's docstring's first line, else its first comment line (Markdown: its first heading)."""
    text = read(path)
    try:
        if path.suffix == ".py" and (doc := first_line(ast.get_docstring(ast.parse(text)))):
            return doc
    except (SyntaxError, ValueError):
        pass
    for line in text.splitlines()[:40]:
        if m := re.match(r"(?:#(?!!)|//+|/\*+|\*|--|<!--|;+)\s*(.*?)\s*(?:\*/|-->)?$", line.strip()):
            if m.group(1) and not re.search(r"(?i)copyright|license|spdx|eslint|type:|coding[:=]|^!", m.group(1)):
                return m.group(1)[:160]
        elif line.strip() and path.suffix not in (".md", ".rst", ".txt"):
            break
    return ""


def entry_points(folder: Path, files: list[Path], root: Path) -> list[dict]:
    found = []
    for path in files:
        where = show(path, root)
        if path.name == "__main__.py":
            found.append({"kind": "__main__.py", "where": where,
                          "detail": f"python -m {module_name(path) or path.parent.name}"})
        for n, line in enumerate(read(path).splitlines() if path.suffix in (".py", ".go", ".java", ".kt", ".rs")
                                 else [], 1):
            if MAIN.match(line):
                found.append({"kind": "main()", "where": f"{where}:{n}", "detail": line.strip()[:100]})
            elif MAIN_GUARD.match(line):
                found.append({"kind": "__main__ guard", "where": f"{where}:{n}", "detail": ""})
    for name in ("pyproject.toml", "package.json"):  # the nearest one, looking up as far as the repository root
        for place in (folder.resolve(), *folder.resolve().parents):
            if (place / name).is_file():
                found += manifest_entries(place / name, show(place / name, root))
            if (place / name).is_file() or place == root.resolve():
                break
    return found


def manifest_entries(path: Path, where: str) -> list[dict]:
    """Console scripts from pyproject.toml; bin, main and module from package.json."""
    def entry(kind: str, detail: str) -> dict:
        return {"kind": kind, "where": where, "detail": detail}
    try:
        if path.name == "pyproject.toml":
            data = tomllib.loads(read(path))
            project, poetry = data.get("project", {}), data.get("tool", {}).get("poetry", {})
            tables = (project.get("scripts", {}), project.get("gui-scripts", {}), poetry.get("scripts", {}))
            return [entry("console script", f"{k} = {v}") for table in tables for k, v in table.items()]
        data = json.loads(read(path))
        bins = {data.get("name", "bin"): data["bin"]} if isinstance(data.get("bin"), str) else data.get("bin", {})
        return ([entry("package.json bin", f"{k} -> {v}") for k, v in bins.items()]
                + [entry(f"package.json {k}", str(data[k])) for k in ("main", "module") if k in data])
    except (ValueError, AttributeError, TypeError) as exc:
        return [entry("unreadable manifest", str(exc)[:100])]


def outline_folder(folder: Path, root: Path) -> dict:
    files = list_files(folder)
    entries = [{"path": show(p, folder), "lines": len(read(p).splitlines()), "bytes": p.stat().st_size,
                "summary": summary(p)} for p in files[:MAX_FILES]]
    return {"kind": "folder", "path": show(folder, root), "files": entries,
            "more_files": max(0, len(files) - MAX_FILES), "entry_points": entry_points(folder, files, root)}


def render(o: dict) -> str:
    def doc(text: str) -> str:
        return f"  — {text}" if text else ""

    def item(f: dict, indent: str, head: str) -> str:
        decorators = "".join(f"@{d} " for d in f["decorators"])
        return f"{indent}L{f['line']}-{f['end_line']}  {decorators}{head}{doc(f['doc'])}"

    def call(f: dict) -> str:
        return f"{'async ' if f['async'] else ''}{f['name']}{f['signature']}"
    if o["kind"] == "folder":
        width = max((len(f["path"]) for f in o["files"]), default=0)
        out = [f"{o['path'] or '.'}/  ({len(o['files']) + o['more_files']} files)", ""]
        out += [f"  {f['path']:<{width}}  {f['lines']:>5} lines  {f['summary']}".rstrip() for f in o["files"]]
        out += [f"  … and {o['more_files']} more"] if o["more_files"] else []
        out += ["", "Entry points"] + [f"  {e['kind']}: {e['where']}  {e['detail']}".rstrip()
                                       for e in o["entry_points"]]
        return "\n".join(out + ([] if o["entry_points"] else ["  none found"]))
    if o["kind"] != "python":
        out = [f"{o['path']}  ({o['lines']} lines, {o['kind']}, regex outline)", ""]
        for it in o["items"]:
            head = f"{it['name']}{'' if it['signature'].startswith('(') else ' '}{it['signature']}".rstrip()
            out.append(f"{'    ' if it['kind'] == 'method' else '  '}L{it['line']}  {it['kind']} {head}"
                       f"{'' if it['exported'] else '  (not exported)'}{doc(it['doc'])}")
        return "\n".join(out)
    out = [f"{o['path']}  ({o['lines']} lines) — module {o['module']}"]
    out += [f"  {line}" for line in o["doc"].splitlines()] + ([f"  ERROR: {o['error']}"] if "error" in o else [])
    out += ["", "Imports"] + [f"  {group.replace('_', '-') + ':':<13}" + (", ".join(
        r["module"] + (f" ({', '.join(r['names'])})" if r["names"] else "") for r in rows) or "—")
        for group, rows in o["imports"].items()]
    out += ["", "Classes"] if o["classes"] else []
    for c in o["classes"]:
        out.append(item(c, "  ", f"class {c['name']}" + (f"({', '.join(c['bases'])})" if c["bases"] else "")))
        out += [item(m, "      ", call(m)) for m in c["methods"]]
    out += (["", "Functions"] if o["functions"] else []) + [item(f, "  ", call(f)) for f in o["functions"]]
    if o["constants"]:
        out += ["", "Constants: " + ", ".join(f"{c['name']} (L{c['line']})" for c in o["constants"])]
    out += ["", f"Runs as a script: `if __name__ == \"__main__\"` at L{o['main_guard']}"] if o["main_guard"] else []
    return "\n".join(out + ["", f"Imported by ({len(o['importers'])}): "
                                + (", ".join(o["importers"]) or "nothing in this repository")])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="outline.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="a source file or a folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--root", help="the repository root, for paths and the importers search "
                                       "(default: git's top level, else the current folder)")
    args = parser.parse_args(argv)
    path = Path(args.path)
    kind = "folder" if path.is_dir() else "python" if path.suffix in (".py", ".pyw") else LANGS.get(path.suffix)
    if not path.exists() or not kind:
        why = "does not exist" if not path.exists() else "is not Python, JS/TS, Go, Rust, Java or Kotlin: read it"
        print(f"outline.py: {path} {why}", file=sys.stderr)
        return 2
    top = run_git(path if path.is_dir() else path.parent, "rev-parse", "--show-toplevel")
    root = Path(args.root or (top.strip() if top else "."))
    result = (outline_folder(path, root) if kind == "folder" else outline_python(path, root) if kind == "python"
              else outline_regex(path, root))
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
