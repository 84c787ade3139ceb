"""Warm sandboxes: containers started ahead of need, one per task, for tasks without a network.

Each pooled container is started on a slot (slots.py), its command channel opened and proven: a
probe bound into its /mirror must appear there and vanish again, or the pool turns itself off
(no root, another mount namespace than the engine's). A task takes one, its directories are bound
in, the container is renamed for the task, and the pool makes another in the background. Nothing
is ever handed out twice (taken off the queue before any await) or used again after its task.

Before a container is handed out the engine is asked what it is: running, this instance's and this
process's, the image, user and limits the task asks for, read-only, no capabilities, no network.
Anything else is removed and the task starts a cold container instead. Tasks with a network start
cold: a container made without one cannot join one later.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.types
from docker.utils import parse_bytes

from slackbot.protocol import Mount

from . import slots
from .channel import Channel
from .exec_stream import ExecRun

if TYPE_CHECKING:
    from .docker import DockerSandboxes

log = logging.getLogger(__name__)
ROLE = "pool"
SHAPES_KEPT = 3  # shapes (image, cpus, memory) kept warm: the default and the latest asked for
RETRY_AFTER_S = 30.0  # a failed refill waits this long before the next try
# A refill after a hand-out waits this long: starting a container costs the engine ~0.2 s of CPU,
# which would otherwise compete with the task that was just handed one (and with a burst's others).
REFILL_AFTER_S = 1.0


@dataclass(frozen=True)
class Shape:
    image: str
    cpus: float
    memory: str


@dataclass
class Pooled:
    container_id: str
    name: str
    slot: slots.Slot
    channel: Channel
    shape: Shape


class WarmPool:
    def __init__(self, provider: DockerSandboxes, size: int, root: Path) -> None:
        self.provider, self.size, self.root = provider, size, root
        self.off = "" if size > 0 else "SLACKBOT_WARM_POOL=0"
        self._ready: dict[Shape, collections.deque[Pooled]] = {}
        self._filling: set[Shape] = set()
        self._wanted: dict[Shape, float] = {}
        self._fills: set[asyncio.Task[None]] = set()
        self._retry_at = 0.0
        self._closed = False

    def ready(self, shape: Shape) -> int:
        return len(self._ready.get(shape, ()))

    def settled(self, shape: Shape) -> bool:
        """Full, and nothing being made for `shape`."""
        return self.ready(shape) >= self.size and shape not in self._filling

    def warm(self, shape: Shape, *, after_s: float = 0.0) -> None:
        """Keeps `shape` filled from now on (at most SHAPES_KEPT shapes: the oldest asked for goes);
        a refill it starts begins `after_s` from now."""
        if self.off or self._closed:
            return
        self._wanted.pop(shape, None)
        self._wanted[shape] = time.monotonic()
        while len(self._wanted) > SHAPES_KEPT:
            dropped = next(iter(self._wanted))
            del self._wanted[dropped]
            for pooled in self._ready.pop(dropped, ()):
                self._discard(pooled)
        if shape not in self._filling and self.ready(shape) < self.size and time.monotonic() > self._retry_at:
            self._filling.add(shape)  # (at once: a second call before the fill runs starts no other)
            fill = asyncio.create_task(self._fill(shape, after_s), name="warm-pool-fill")
            self._fills.add(fill)
            fill.add_done_callback(self._fills.discard)

    async def take(self, shape: Shape, task_id: int, mounts: tuple[Mount, ...]) -> Pooled | None:
        """A warm container for the task with `mounts` bound in, or None (the caller starts a cold one)."""
        if self.off or self._closed or any(m.target not in slots.TARGETS or m.volume for m in mounts):
            return None
        self.warm(shape)
        queue = self._ready.get(shape)
        while queue:
            pooled = queue.popleft()  # ours alone from here on
            self.warm(shape, after_s=REFILL_AFTER_S)
            job = asyncio.ensure_future(self.provider.call("take a warm sandbox", self._hand_out, pooled, task_id,
                                                           mounts))
            try:
                await asyncio.shield(job)
                return pooled
            except asyncio.CancelledError:  # removed once the hand-out's thread is done with it
                await asyncio.gather(job, return_exceptions=True)
                self._discard(pooled)
                raise
            except Exception as exc:
                log.warning("a warm sandbox was not used (%s); it is removed", exc)
                self._discard(pooled)
        return None

    async def drain(self) -> None:
        """Shutdown: stops refilling and removes every container still waiting."""
        self._closed = True
        if self._fills:  # a container being made is removed by its own fill, once made
            _, late = await asyncio.wait(list(self._fills), timeout=self.provider.settings.docker_timeout_s * 3)
            for fill in late:
                fill.cancel()
        waiting = [p for queue in self._ready.values() for p in queue]
        self._ready.clear()
        if waiting:
            await asyncio.gather(*(self.provider.call("remove a warm sandbox", self.remove_sync, p)
                                   for p in waiting), return_exceptions=True)

    # ---- on the provider's threads -----------------------------------------------------------

    def _hand_out(self, pooled: Pooled, task_id: int, mounts: tuple[Mount, ...]) -> None:
        self._check(pooled)
        name = f"slackbot-{self.provider.instance}-task-{task_id}-{secrets.token_hex(3)}"
        self.provider.client().api.rename(pooled.container_id, name)
        pooled.name = name
        self.bind_sync(pooled, mounts)

    @staticmethod
    def bind_sync(pooled: Pooled, mounts: tuple[Mount, ...]) -> None:
        """The task's directories into the container's slot: all of them, or none."""
        if any(m.target not in slots.TARGETS or m.volume for m in mounts):
            raise ValueError("a warm sandbox takes binds at /workspace, /home/agent, /skills only")
        done: list[str] = []
        try:
            for m in mounts:
                pooled.slot.bind(m.source, m.target, read_only=m.read_only)
                done.append(m.target)
        except Exception:
            for target in done:
                pooled.slot.unbind(target)
            raise

    def _check(self, pooled: Pooled) -> None:
        """What the engine says the container is, against what the task needs."""
        info = self.provider.client().api.inspect_container(pooled.container_id)
        host, config, shape, s = info["HostConfig"], info["Config"], pooled.shape, self.provider.settings
        labels = config.get("Labels") or {}
        memory = parse_bytes(shape.memory)
        wrong = {
            "not running": not info["State"].get("Running"),
            "another owner": labels.get("slackbot.instance") != self.provider.instance
            or labels.get("slackbot.worker") != self.provider.worker or labels.get("slackbot.role") != ROLE,
            "another image": config.get("Image") != shape.image,
            "another user": config.get("User") != self.provider.user,
            "other limits": (host.get("NanoCpus"), host.get("Memory"), host.get("MemorySwap"),
                             host.get("PidsLimit")) != (int(shape.cpus * 1e9), memory, memory, s.sandbox_pids),
            "not confined": not host.get("ReadonlyRootfs") or "ALL" not in (host.get("CapDrop") or ())
            or "no-new-privileges" not in (host.get("SecurityOpt") or ()) or host.get("NetworkMode") != "none",
            "already bound": bool(pooled.slot.bound()),
        }
        found = [why for why, bad in wrong.items() if bad]
        if found:
            raise RuntimeError(", ".join(found))

    def _make_sync(self, shape: Shape) -> Pooled:
        provider = self.provider
        api = provider.client().api
        slot = slots.Slot.make(self.root / folder_of(provider.worker))
        name = f"slackbot-{provider.instance}-warm-{secrets.token_hex(4)}"
        host = provider.host_config((), "none", memory=shape.memory, cpus=shape.cpus)
        host["mounts"] = [docker.types.Mount(target, str(slot.path(target)), type="bind", propagation="rslave")
                          for target in slots.TARGETS]
        container_id = ""
        try:
            container_id = api.create_container(
                shape.image, command=["sleep", "infinity"], name=name, hostname="sandbox",
                labels=provider.labels(0, ROLE), user=provider.user, working_dir="/",
                environment=provider.base_env(), host_config=api.create_host_config(**host))["Id"]
            api.start(container_id)
            channel = Channel(api, container_id, user=provider.user, workdir="/workspace")
            pooled = Pooled(container_id, name, slot, channel, shape)
            self._prove(pooled)
            return pooled
        except BaseException:
            if container_id:
                _quietly(lambda: provider.force_remove(container_id))
            _quietly(slot.release)
            raise

    def _prove(self, pooled: Pooled) -> None:
        """A probe bound into the slot shows in the container and goes again: the binds reach it."""
        probe = self.root / f"probe-{secrets.token_hex(4)}"
        probe.mkdir(parents=True)
        token = secrets.token_hex(8)
        try:
            (probe / "probe").write_text(token)
            pooled.slot.bind(str(probe), "/mirror", read_only=True)
            try:
                seen = self._run(pooled, "cat /mirror/probe")
            finally:
                pooled.slot.unbind("/mirror")
            gone = self._run(pooled, "test -e /mirror/probe && echo present || echo gone")
        finally:
            (probe / "probe").unlink(missing_ok=True)
            probe.rmdir()
        if seen != token or gone != "gone":
            raise slots.SlotError("binds on the host do not reach the container (is the engine in another mount "
                                  "namespace?)")

    def _run(self, pooled: Pooled, command: str) -> str:
        """A probe command's output; a command that did not run (a slow engine) proves nothing either way."""
        result = pooled.channel.run(command, timeout_s=30, grace_s=1, read_grace_s=5, env={}, run=ExecRun(),
                                    kill=lambda: None)
        if result is None or result.exit_code != 0:
            raise RuntimeError(f"the probe did not run: {pooled.channel.broken or (result and result.output[-200:])}")
        return result.output.strip()

    def remove_sync(self, pooled: Pooled) -> None:
        pooled.channel.close()
        self.provider.force_remove(pooled.container_id)
        pooled.slot.release()

    # ---- on the loop ----------------------------------------------------------------------------

    async def _fill(self, shape: Shape, after_s: float = 0.0) -> None:
        try:
            if after_s:
                await asyncio.sleep(after_s)
            while not self._closed and shape in self._wanted and self.ready(shape) < self.size:
                try:
                    pooled = await self.provider.call("start a warm sandbox", self._make_sync, shape,
                                                      timeout_s=self.provider.settings.docker_timeout_s * 3)
                except Exception as exc:
                    if isinstance(exc.__cause__, slots.SlotError):  # binds cannot work here: for good
                        self.off = f"binds do not reach containers here: {exc.__cause__}"
                        log.warning("warm sandboxes are off: %s", self.off)
                    else:  # the engine, a slow probe: tried again later
                        self._retry_at = time.monotonic() + RETRY_AFTER_S
                        log.warning("could not start a warm sandbox: %s", exc)
                    return
                if self._closed or shape not in self._wanted:
                    await self.provider.call("remove a warm sandbox", self.remove_sync, pooled)
                    return
                self._ready.setdefault(shape, collections.deque()).append(pooled)
        finally:
            self._filling.discard(shape)

    def _discard(self, pooled: Pooled) -> None:
        self.provider.in_background(self.remove_sync, pooled)


def task_of(container: dict[str, Any]) -> int:
    """The task a listed container belongs to (0: none): its label, or for a warm container handed to a
    task, the name `_hand_out` gave it (labels cannot change)."""
    labels = container.get("Labels") or {}
    label = labels.get("slackbot.task", "0")
    if label != "0" or labels.get("slackbot.role") != ROLE:
        return int(label) if label.isdigit() else 0
    found = re.search(r"-task-(\d+)-[0-9a-f]+$", (container.get("Names") or [""])[0])
    return int(found.group(1)) if found else 0


def folder_of(worker: str) -> str:
    """A process's slot folder: a digest of its worker id, which names its host (and the folder shows in
    a sandbox's mount table)."""
    return hashlib.sha256(worker.encode()).hexdigest()[:16]


def _quietly(fn: Any) -> None:
    try:
        fn()
    except Exception:
        log.warning("cleaning up a warm sandbox failed", exc_info=True)
