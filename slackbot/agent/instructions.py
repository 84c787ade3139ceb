"""Team instructions from AGENTS.md files, root to leaf (AGENTS.override.md wins in its directory)."""

from __future__ import annotations

from pathlib import Path

CAP_BYTES = 32 * 1024


def load_agents_md(root: Path, cwd: Path | None = None, cap: int = CAP_BYTES) -> str:
    """Concatenates the instructions found from `root` down to `cwd` (blocking: call on an executor)."""
    root = root.resolve()
    cwd = (cwd or root).resolve()
    if cwd != root and root not in cwd.parents:
        cwd = root
    dirs = [root] + [root / p for p in _between(root, cwd)]
    parts: list[str] = []
    for directory in dirs:
        for name in ("AGENTS.override.md", "AGENTS.md"):
            path = directory / name
            # Read on the host from a tree the sandbox writes: a symlink could point at host files
            # (/proc/self/environ holds the bot's tokens), so only regular files inside the tree.
            if path.is_symlink() or directory.is_symlink() or root not in path.resolve().parents:
                continue
            if path.is_file():
                rel = path.relative_to(root)
                parts.append(f"## {rel}\n{path.read_text(errors='replace').strip()}")
                break
    text = "\n\n".join(parts)
    data = text.encode()
    if len(data) > cap:
        text = data[:cap].decode(errors="ignore") + "\n[AGENTS.md instructions cut at 32 KiB]"
    return text


def _between(root: Path, cwd: Path) -> list[Path]:
    rel = cwd.relative_to(root)
    return [Path(*rel.parts[: i + 1]) for i in range(len(rel.parts))]
