"""Workspace directories on the host, each with a disk quota.

A workspace is written by the sandbox, so the host only ever makes it, mounts it and unmounts it:
it never reads, follows or writes anything inside. Layout per agent thread:

- `thread-N.img` + `thread-N/` (loop mode, as root): a sparse ext4 image, mounted at `thread-N/`
  while a task runs; its root holds `work/` (the sandbox's /workspace), `home/` (its /home/agent)
  and `lost+found`. The filesystem is the quota, for both.
- `thread-N.layout` + `thread-N/work/`, `thread-N/home/` (watch mode): plain directories; a
  watcher measures them from inside the sandbox and stops the task past the quota.

The marker beside the directory (never inside it) tells a workspace of this layout from one made
by the first release, whose `thread-N/` was the checkout itself: that one is moved aside, since
any name inside it (a `work` symlink, say) was chosen by a sandbox.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar, TypeVarTuple

from . import slots

log = logging.getLogger(__name__)
T = TypeVar("T")
Ts = TypeVarTuple("Ts")
SANDBOX_UID = 1000
COMMAND_TIMEOUT_S = 60


class DiskError(Exception):
    """Worded for a Slack thread."""


@dataclass(frozen=True)
class WorkspaceDisk:
    path: Path  # the directory mounted at /workspace
    home: Path  # the directory mounted at /home/agent: on the same quota, gone with the workspace
    enforced: bool  # True: the filesystem enforces the quota; False: a watcher must
    moved_aside: str = ""  # a first-release workspace was found and moved here


class WorkspaceDisks:
    def __init__(self, root: Path, *, quota_bytes: int, mode: str = "auto", tmp_dir: Path | None = None,
                 reserve_bytes: int = 0) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.reserve_bytes = reserve_bytes
        self._lock = threading.Lock()
        self.mode = _resolve_mode(mode)
        self.tmp_dir = tmp_dir or root.parent / "tmp"
        self._executor = ThreadPoolExecutor(2, thread_name_prefix="disks")
        self._mounted: set[Path] = set()

    def base(self, thread_id: int) -> Path:
        return self.root / f"thread-{thread_id}"

    async def attach(self, thread_id: int) -> WorkspaceDisk:
        """The thread's workspace, made on first use and mounted (loop mode) until `detach`."""
        return await self._run(self._attach, thread_id)

    async def detach(self, thread_id: int) -> None:
        if self.mode == "loop":
            await self._run(self._unmount, self.base(thread_id))

    def close(self) -> None:
        """Unmounts what this process mounted (a task interrupted by shutdown may not have)."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        for base in list(self._mounted):
            try:
                self._unmount(base)
            except DiskError:
                pass

    async def _run(self, fn: Callable[[*Ts], T], *args: *Ts) -> T:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(COMMAND_TIMEOUT_S * 2):
            return await loop.run_in_executor(self._executor, fn, *args)

    # ---- blocking parts ------------------------------------------------------------------

    def _attach(self, thread_id: int) -> WorkspaceDisk:
        with self._lock:  # the room check and the mount that takes it up are one step
            self._check_room(thread_id)
            return self._attach_locked(thread_id)

    def _check_room(self, thread_id: int) -> None:
        """A sparse image is a promise of its quota: the disk must hold this workspace at its full
        quota and keep the reserve (the database lives there). Tasks running together are watched
        by the run manager's disk guard (`free_bytes`, `allocated`)."""
        promised = 0
        if self.mode == "loop":
            image = self.base(thread_id).with_name(f"thread-{thread_id}.img")
            promised = max(0, self.quota_bytes - self.allocated(thread_id)) if image.exists() else self.quota_bytes
        free = self.free_bytes()
        if free - promised < self.reserve_bytes:
            raise DiskError(f"The bot's disk is nearly full ({free >> 20} MiB free in its data directory, "
                            f"{promised >> 20} MiB more for this workspace, {self.reserve_bytes >> 20} MiB kept "
                            "in reserve); tasks start again once space is freed.")

    def free_bytes(self) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(self.root).free

    def allocated(self, thread_id: int) -> int:
        """Bytes a loop-mode workspace's image holds on the host (0 in watch mode)."""
        image = self.base(thread_id).with_name(f"thread-{thread_id}.img")
        try:
            return image.stat().st_blocks * 512
        except OSError:
            return 0

    def _attach_locked(self, thread_id: int) -> WorkspaceDisk:
        base = self.base(thread_id)
        image, marker = base.with_name(base.name + ".img"), base.with_name(base.name + ".layout")
        self.root.mkdir(parents=True, exist_ok=True)
        moved = ""
        if os.path.lexists(base) and not image.exists() and not marker.exists():
            moved = str(base.with_name(f"{base.name}.legacy-{int(time.time())}"))
            os.rename(base, moved)  # renames the entry; nothing inside is read or followed
        if image.exists() or (self.mode == "loop" and not marker.exists()):
            if not image.exists():
                self._make_image(image)
            base.mkdir(exist_ok=True)
            if not os.path.ismount(base):
                _run(["mount", "-o", "loop,nosuid,nodev", str(image), str(base)])
            self._mounted.add(base)
            _sandbox_dirs(base)  # the filesystem's root is ours: the sandbox sees only these two
            return WorkspaceDisk(base / "work", base / "home", enforced=True, moved_aside=moved)
        if not marker.exists():
            base.mkdir(parents=True, exist_ok=True)
            marker.write_text("watch\n")
        _sandbox_dirs(base)
        return WorkspaceDisk(base / "work", base / "home", enforced=False, moved_aside=moved)

    def _make_image(self, image: Path) -> None:
        """A new thread's image: the spare one made ahead when there is one (a task's start then waits
        for no mkfs), and the next spare made behind it."""
        spare = self._spare_path()
        try:
            os.rename(spare, image)
        except FileNotFoundError:
            self._format(image)
        try:  # (the caller holds the lock: the next spare is made on the other thread, after it)
            self._executor.submit(self._spare)
        except RuntimeError:  # shutting down
            pass

    def _spare(self) -> None:
        with self._lock:
            spare = self._spare_path()
            if not spare.exists():
                try:
                    self._format(spare)
                except DiskError as exc:
                    log.warning("could not make a spare workspace image: %s", exc)

    def _spare_path(self) -> Path:
        """A formatted image waiting for the next new thread (named by its size: a changed quota
        never takes an old one)."""
        return self.root / f".spare-{self.quota_bytes}.img"

    def _format(self, image: Path) -> None:
        template = self.tmp_dir / "workspace-template"
        for name in ("work", "home"):
            (template / name).mkdir(parents=True, exist_ok=True)
            os.chown(template / name, SANDBOX_UID, SANDBOX_UID)
        partial = image.with_name(image.name + ".partial")
        with open(partial, "wb") as f:
            f.truncate(self.quota_bytes)
        _run(["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "root_owner=0:0,lazy_itable_init=1", "-d", str(template),
              str(partial)])
        os.rename(partial, image)

    def _unmount(self, base: Path) -> None:
        self._mounted.discard(base)
        if not os.path.ismount(base):
            return
        try:
            _run(["umount", str(base)])
        except DiskError:
            _run(["umount", "-l", str(base)])  # still busy: detach it now, the kernel frees it later


def _sandbox_dirs(base: Path) -> None:
    """`work` and `home` directly below a directory only the host writes; made once, never entered."""
    for name in ("work", "home"):
        path = base / name
        if os.path.lexists(path):
            continue
        path.mkdir()
        if os.geteuid() == 0:
            os.chown(path, SANDBOX_UID, SANDBOX_UID)
        else:  # the sandbox runs as uid 1000, which is not us
            os.chmod(path, 0o777)


def _resolve_mode(mode: str) -> str:
    if mode != "auto":
        return mode
    usable = slots.usable() and shutil.which("mkfs.ext4") and shutil.which("mount") and (
        os.path.exists("/dev/loop-control"))
    return "loop" if usable else "watch"


def _run(argv: list[str]) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DiskError(f"`{argv[0]}` failed: {exc}") from exc
    if done.returncode != 0:
        raise DiskError(f"`{' '.join(argv[:2])}` failed: {(done.stderr or done.stdout).strip()[:300]}")
