"""A repository's skill folders (`.agents/skills`, the older `.codex/skills`) copied out of a host
repository at one commit, never from a workspace, where an agent could plant one for the next task.

Repository content is hostile: only regular files are written (a symlink's blob is its target, a
gitlink no file), every path part is checked, and files, bytes and file sizes are capped.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .git_env import HARDENED_CONFIG, config_env, host_env, run_git

ROOTS = (".agents/skills", ".codex/skills")  # highest first
MAX_FILES = 500
MAX_BYTES = 8 << 20
MAX_FILE = 1 << 20
MAX_DEPTH = 6


@dataclass
class Exported:
    folders: list[Path] = field(default_factory=list)  # one per root present, in ROOTS order
    warnings: list[str] = field(default_factory=list)


def export_skills(repo: Path, sha: str, dest: Path) -> Exported:
    """Writes each root's files under dest/<root> (blocking: call through GitRunner.run)."""
    found = Exported()
    wanted: list[tuple[str, str, Path]] = []  # (blob, mode, target)
    total = 0
    for root in ROOTS:
        listed = run_git(["ls-tree", "-r", "-l", "-z", "--full-tree", sha, "--", root], cwd=repo)
        entries = [e for e in listed.split("\0") if e]
        if not entries:
            continue
        folder = dest / root  # (the root's own path: problems name a folder people can find)
        found.folders.append(folder)
        for entry in entries:
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            rel = path[len(root) + 1:].split("/") if path.startswith(root + "/") else []
            if len(parts) != 4 or parts[0] not in ("100644", "100755") or parts[1] != "blob" or not _safe(rel):
                continue
            size = int(parts[3])
            if size > MAX_FILE:
                found.warnings.append(f"{path}: larger than {MAX_FILE >> 20} MiB, left out")
                continue
            if len(wanted) >= MAX_FILES or total + size > MAX_BYTES:
                found.warnings.append(f"{root}: more than {MAX_FILES} files or {MAX_BYTES >> 20} MiB; "
                                      "the rest were not read")
                break
            wanted.append((parts[2], parts[0], folder.joinpath(*rel)))
            total += size
    blobs = _read_blobs(repo, [w[0] for w in wanted])
    for (blob, mode, target), data in zip(wanted, blobs):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.chmod(target, 0o755 if mode == "100755" else 0o644)
    for folder in found.folders:
        folder.mkdir(parents=True, exist_ok=True)
    return found


def _read_blobs(repo: Path, blobs: list[str]) -> list[bytes]:
    """The blobs' bytes through one `git cat-file --batch` (sizes were checked by the listing)."""
    if not blobs:
        return []
    env = host_env(config_env(HARDENED_CONFIG))
    proc = subprocess.run(["git", "cat-file", "--batch"], cwd=repo, env=env, input="\n".join(blobs).encode() + b"\n",
                          capture_output=True, timeout=120, check=True)
    out, pos, found = proc.stdout, 0, []
    for blob in blobs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        if len(header) != 3 or header[0].decode() != blob:
            raise ValueError(f"git cat-file answered {out[pos:end][:80]!r} for {blob}")
        size = int(header[2])
        found.append(out[end + 1:end + 1 + size])
        pos = end + 1 + size + 1
    return found


def _safe(parts: list[str]) -> bool:
    return (0 < len(parts) <= MAX_DEPTH
            and all(p not in ("", ".", "..") and "\\" not in p and len(p) <= 255 for p in parts))
