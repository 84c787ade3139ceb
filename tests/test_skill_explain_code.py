"""The built-in explain-code skill: its outline script on a small fixture repository (a Python
module's imports, classes, signatures, line numbers, docstrings and importers; a folder's files and
entry points; a JS file's regex outline; JSON), and the skill folder passes the strict check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from slackbot.agent.skills import check_dir, parse_skill
from tests.git_helpers import git

REPO_ROOT = Path(__file__).resolve().parent.parent
SKILL = REPO_ROOT / "skills" / "explain-code"
OUTLINE = SKILL / "scripts" / "outline.py"

CART = '''\
"""Shopping cart: items and totals.

Longer notes that the outline leaves out.
"""
from __future__ import annotations

import json
import os.path
from dataclasses import dataclass

import requests

from shop import pricing
from .pricing import tax

TAX_RATE = 0.2


@dataclass
class Cart:
    """A list of items.

    More words."""

    items: list

    def add(self, name: str, qty: int = 1) -> None:
        """Add an item."""
        self.items.append((name, qty))

    async def total(self, *, currency="EUR") -> float:
        return 0.0


def load(path: str) -> Cart:
    """Read a cart from JSON."""
    return Cart(json.load(open(path)))
'''

FILES = {
    "pyproject.toml": '[project]\nname = "shop"\n\n[project.scripts]\nshop = "shop.cli:main"\n',
    "shop/__init__.py": '"""Shop: a tiny store."""\n',
    "shop/cart.py": CART,
    "shop/pricing.py": '"""Prices and tax."""\n\n\ndef tax(x):\n    return x\n',
    "shop/cartography.py": '"""Maps, not carts."""\n',
    "shop/cli.py": ('"""Command line."""\nfrom shop.cart import Cart, load\n\n\n'
                    'def main(argv=None) -> int:\n    return 0\n\n\nif __name__ == "__main__":\n    main()\n'),
    "shop/__main__.py": "from .cli import main\n\nmain()\n",
    "shop/views.py": "# Views over the cart.\nimport shop.cartography\nfrom . import (\n    pricing,\n    cart,\n)\n",
    "shop/report.py": "from shop import pricing  # not the cart\nfrom .cartography import *\n",
    "tests/test_cart.py": "import os\nimport shop.cart as c\n",
    "web/cart.js": (
        "// Cart widget for the page.\n"
        "/**\n * A cart on screen.\n */\n"
        "export class CartView extends View {\n"
        "  render(items) {\n"
        "    return items;\n"
        "  }\n"
        "}\n"
        "\n"
        "export async function loadCart(id, opts = {}) {\n"
        "  return fetch(id);\n"
        "}\n"
        "const helper = (a, b) => a + b;\n"
        "module.exports = { loadCart };\n"),
}


def line(path: str, needle: str) -> int:
    hits = [n for n, text in enumerate(FILES[path].splitlines(), 1) if needle in text]
    assert len(hits) == 1, (path, needle, hits)
    return hits[0]


def make_repo(root: Path) -> Path:
    for rel, content in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    git("init", "--quiet", str(root))  # untracked files count: the outline lists tracked and unignored ones
    return root


def outline(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, str(OUTLINE), *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_python_module(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    data = json.loads(outline("shop/cart.py", "--json", cwd=repo))
    assert data["kind"] == "python" and data["path"] == "shop/cart.py" and data["module"] == "shop.cart"
    assert data["doc"] == "Shopping cart: items and totals."
    assert data["lines"] == len(CART.splitlines())
    groups = {group: [(i["module"], i["names"], i["line"]) for i in items] for group, items in data["imports"].items()}
    assert groups == {
        "stdlib": [("__future__", ["annotations"], 5), ("json", [], 7), ("os.path", [], 8),
                   ("dataclasses", ["dataclass"], 9)],
        "third_party": [("requests", [], 11)],
        "local": [("shop", ["pricing"], 13), (".pricing", ["tax"], 14)],
    }
    [cart] = data["classes"]
    assert (cart["name"], cart["line"], cart["end_line"], cart["doc"]) == ("Cart", line("shop/cart.py", "class Cart"),
                                                                            line("shop/cart.py", "return 0.0"),
                                                                            "A list of items.")
    add, total = cart["methods"]
    assert (add["name"], add["signature"], add["line"], add["doc"], add["async"]) == (
        "add", "(self, name: str, qty: int=1) -> None", line("shop/cart.py", "def add"), "Add an item.", False)
    assert (total["name"], total["signature"], total["doc"], total["async"]) == (
        "total", "(self, *, currency='EUR') -> float", "", True)
    [load] = data["functions"]
    assert (load["name"], load["signature"], load["line"], load["doc"]) == (
        "load", "(path: str) -> Cart", line("shop/cart.py", "def load"), "Read a cart from JSON.")
    assert cart["decorators"] == ["dataclass"] and cart["bases"] == []
    assert data["constants"] == [{"name": "TAX_RATE", "line": line("shop/cart.py", "TAX_RATE")}]
    assert data["main_guard"] is None
    # Importers: absolute, aliased, parenthesised relative; not `shop.cartography` nor `from shop import pricing`.
    assert data["importers"] == ["shop/cli.py:2", "shop/views.py:3", "tests/test_cart.py:2"]

    text = outline("shop/cart.py", cwd=repo)
    assert text.startswith(f"shop/cart.py  ({len(CART.splitlines())} lines) — module shop.cart\n"
                           "  Shopping cart: items and totals.\n")
    assert "  third-party: requests\n" in text
    assert f"      L{add['line']}-{add['end_line']}  add(self, name: str, qty: int=1) -> None  — Add an item." in text
    assert f"  L{load['line']}-{load['end_line']}  load(path: str) -> Cart  — Read a cart from JSON." in text
    assert "Imported by (3): shop/cli.py:2, shop/views.py:3, tests/test_cart.py:2" in text

    cli = json.loads(outline(str(repo / "shop" / "cli.py"), "--json", cwd=tmp_path))  # from outside: git finds the root
    assert cli["path"] == "shop/cli.py" and cli["main_guard"] == line("shop/cli.py", "__name__")
    assert cli["importers"] == ["shop/__main__.py:1"]


def test_folder_and_entry_points(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    data = json.loads(outline("shop", "--json", cwd=repo))
    assert data["kind"] == "folder" and data["path"] == "shop" and data["more_files"] == 0
    files = {f["path"]: (f["lines"], f["summary"]) for f in data["files"]}
    assert files == {
        "__init__.py": (1, "Shop: a tiny store."),
        "__main__.py": (3, ""),
        "cart.py": (len(CART.splitlines()), "Shopping cart: items and totals."),
        "cartography.py": (1, "Maps, not carts."),
        "cli.py": (10, "Command line."),
        "pricing.py": (5, "Prices and tax."),
        "report.py": (2, ""),  # a comment after code is not a summary
        "views.py": (6, "Views over the cart."),
    }
    assert all(f["bytes"] == len(FILES["shop/" + f["path"]].encode()) for f in data["files"])
    entries = {(e["kind"], e["where"], e["detail"]) for e in data["entry_points"]}
    assert entries == {
        ("__main__.py", "shop/__main__.py", "python -m shop"),
        ("main()", f"shop/cli.py:{line('shop/cli.py', 'def main')}", "def main(argv=None) -> int:"),
        ("__main__ guard", f"shop/cli.py:{line('shop/cli.py', '__name__')}", ""),
        ("console script", "pyproject.toml", "shop = shop.cli:main"),
    }
    text = outline("shop", cwd=repo)
    assert text.startswith("shop/  (8 files)\n")
    assert "  console script: pyproject.toml  shop = shop.cli:main" in text


def test_javascript_regex_outline(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    data = json.loads(outline("web/cart.js", "--json", cwd=repo))
    assert data["kind"] == "js" and data["lines"] == len(FILES["web/cart.js"].splitlines())
    items = [(i["kind"], i["name"], i["signature"], i["line"], i["exported"], i["doc"]) for i in data["items"]]
    js = "web/cart.js"
    assert items == [
        ("class", "CartView", "extends View", line(js, "class CartView"), True, "A cart on screen."),
        ("method", "render", "(items)", line(js, "render("), True, ""),
        ("function", "loadCart", "(id, opts = {})", line(js, "loadCart(id"), True, ""),
        ("function", "helper", "(a, b)", line(js, "const helper"), False, ""),
        ("export", "module.exports", "{ loadCart };", line(js, "module.exports"), True, ""),
    ]
    text = outline("web/cart.js", cwd=repo)
    assert f"  L{line(js, 'class CartView')}  class CartView extends View  — A cart on screen." in text
    assert f"  L{line(js, 'const helper')}  function helper(a, b)  (not exported)" in text


def test_help_and_errors(tmp_path: Path) -> None:
    assert "--json" in outline("--help", cwd=tmp_path)
    for path in ("nowhere.py", "notes.txt"):
        (tmp_path / "notes.txt").write_text("words\n")
        done = subprocess.run([sys.executable, str(OUTLINE), path], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.startswith("outline.py: ")
    (tmp_path / "broken.py").write_text('"""Half a module."""\ndef f(:\n')
    data = json.loads(outline("broken.py", "--json", cwd=tmp_path))
    assert data["error"].startswith("not valid Python at line 2") and data["functions"] == []


def test_the_skill_folder_passes_the_strict_check() -> None:
    assert [p for p in check_dir(REPO_ROOT / "skills") if Path(p.path).name == SKILL.name] == []
    skill = parse_skill(SKILL, "built-in", strict=True)
    assert skill.name == "explain-code" and skill.folders == ("scripts",) and skill.warnings == ()
    assert "python3 <skill folder>/scripts/outline.py" in skill.body
