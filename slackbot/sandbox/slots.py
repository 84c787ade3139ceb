"""Host directories a warm container is started on, into which a task's directories are bound later.

The engine cannot add a mount to a running container. A pooled container is started with its
/workspace, /home/agent, /skills and /mirror bound from empty, root-owned directories of a slot;
the slot is a mount point of its own made shared, and the container's binds are its `rslave`
copies. A bind the host then makes onto a slot directory appears in the container at once, and
unmounting it takes it away there too. Needs root with CAP_SYS_ADMIN in the engine's mount
namespace: the pool checks every container it makes (pool.py) and stays off where this fails.

A bind is made at the slot's private staging point first and given its flags there (read-only,
nosuid, nodev), then bound onto its target: a remount after the bind would not reach the
container's copy. Slot directories are only ever removed with rmdir, never recursively: a bind
left behind must never let a removal reach into a workspace.
"""

from __future__ import annotations

import ctypes
import errno
import os
import secrets
from pathlib import Path

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND = 1, 2, 4, 32, 4096
MS_PRIVATE, MS_SHARED = 1 << 18, 1 << 20
MNT_DETACH, UMOUNT_NOFOLLOW = 2, 8
TARGETS = {"/workspace": "workspace", "/home/agent": "home", "/skills": "skills", "/mirror": "mirror"}
STAGE = ".stage"
_libc = ctypes.CDLL(None, use_errno=True)


class SlotError(Exception):
    pass


def _mount(source: str | None, target: Path, flags: int) -> None:
    if _libc.mount(source.encode() if source else None, str(target).encode(), None, flags, None) != 0:
        code = ctypes.get_errno()
        raise SlotError(f"mount {source or ''} {target}: {os.strerror(code)}")


def _umount(target: Path, *, lazy: bool = False) -> None:
    if _libc.umount2(str(target).encode(), UMOUNT_NOFOLLOW | (MNT_DETACH if lazy else 0)) != 0:
        code = ctypes.get_errno()
        if code != errno.EINVAL:  # EINVAL: nothing is mounted there
            raise SlotError(f"umount {target}: {os.strerror(code)}")


def mount_points() -> set[str]:
    """Every mount point in this process's mount namespace."""
    points = set()
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            raw = line.split(b" ")[4]
            points.add(raw.decode("unicode_escape").encode("latin-1").decode(errors="surrogateescape"))
    return points


class Slot:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def make(cls, parent: Path) -> "Slot":
        parent.mkdir(parents=True, exist_ok=True)
        root = parent / f"slot-{secrets.token_hex(4)}"
        root.mkdir(mode=0o755)
        for name in (*TARGETS.values(), STAGE):
            (root / name).mkdir(mode=0o755)  # root's: the container sees them empty and read-only
        slot = cls(root)
        try:
            _mount(str(root), root, MS_BIND)
            _mount(None, root, MS_PRIVATE)  # its own peer group, not the parent's
            _mount(None, root, MS_SHARED)
        except SlotError:
            slot.release()
            raise
        return slot

    def path(self, target: str) -> Path:
        return self.root / TARGETS[target]

    def bind(self, source: str, target: str, *, read_only: bool) -> None:
        stage, dest = self.root / STAGE, self.path(target)
        if str(dest) in mount_points():
            raise SlotError(f"{target} is bound already")
        _mount(source, stage, MS_BIND)
        try:
            _mount(None, stage, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (MS_RDONLY if read_only else 0))
            _mount(str(stage), dest, MS_BIND)  # a copy of a mount keeps its flags
        finally:
            _umount(stage)

    def unbind(self, target: str) -> None:
        _umount(self.path(target))
        if str(self.path(target)) in mount_points():
            raise SlotError(f"{target} is still bound")

    def bound(self) -> list[str]:
        points = mount_points()
        return [t for t in TARGETS if str(self.path(t)) in points]

    def release(self) -> None:
        """After its container is gone: every bind undone, then the directories removed. Nothing in the
        container can hold a bind any more, so a busy one is detached rather than left behind."""
        points = mount_points()
        for name in (*TARGETS.values(), STAGE, ""):
            path = self.root / name if name else self.root
            if str(path) in points:
                try:
                    _umount(path)
                except SlotError:
                    _umount(path, lazy=True)
        for name in (*TARGETS.values(), STAGE, ""):
            try:
                os.rmdir(self.root / name if name else self.root)
            except FileNotFoundError:
                pass


def release_all(parent: Path) -> int:
    """Releases every slot under `parent` (a dead process's); returns how many."""
    count = 0
    try:
        entries = sorted(parent.iterdir())
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.startswith("slot-") and entry.is_dir() and not entry.is_symlink():
            Slot(entry).release()
            count += 1
    try:
        parent.rmdir()
    except OSError:
        pass
    return count


def usable() -> bool:
    """Root with CAP_SYS_ADMIN (a plain container's root has not got it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return os.geteuid() == 0 and bool(int(line.split()[1], 16) >> 21 & 1)
    except OSError:
        pass
    return False
