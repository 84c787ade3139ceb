"""Docker sandboxes: one container per task for the agent, one-shot containers around it.

The docker SDK blocks, so every engine call runs on the provider's own bounded thread pool and
is bounded by `asyncio.wait_for`. A caller-side timeout cannot stop a thread, so each blocking
call also carries its own bound (the client's socket timeout for engine calls, a read deadline
for command output): a thread given up on by its caller frees itself soon after, and the pool
cannot fill up with stuck calls.

Every container runs as the image's unprivileged user with all capabilities dropped,
`no-new-privileges`, a read-only root filesystem, a sized tmpfs at /tmp and resource limits.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Collection

import docker
import docker.errors
import docker.types
import requests.exceptions
from docker.utils import kwargs_from_env

from slackbot.protocol import Mount, Step, StepResult

from . import network as nets
from . import slots
from .container import DockerSandbox
from .pool import Shape, WarmPool, folder_of, task_of
from .steps import run_step_sync

log = logging.getLogger(__name__)
WORKDIR = "/workspace"
SANDBOX_USER = "1000:1000"  # the image's `agent` user
HOME = "/home/agent"
LABEL_MANAGED = "slackbot.managed"
LABEL_INSTANCE = "slackbot.instance"
LABEL_TASK = "slackbot.task"
LABEL_ROLE = "slackbot.role"
LABEL_WORKER = "slackbot.worker"
_INSTANCE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$")
BASE_ENV = {"HOME": HOME, "LANG": "C.UTF-8", "TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat",
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


class SandboxError(Exception):
    """A sandbox failure, worded for the person who has to fix it."""

    def __init__(self, message: str, *, operation: str = "", retryable: bool = False):
        super().__init__(message)
        self.operation = operation
        self.retryable = retryable


def docker_host() -> str:
    """The engine the SDK talks to (it reads DOCKER_HOST itself), for messages."""
    return kwargs_from_env().get("base_url") or "unix:///var/run/docker.sock"


class DockerSandboxes:
    """Starts task containers and removes them; only touches containers labelled with `instance`."""

    user = SANDBOX_USER

    def __init__(self, settings: Any, *, instance: str, worker: str = "", max_workers: int = 8):
        if not _INSTANCE_RE.match(instance):
            raise ValueError(f"instance must be a short name of letters, digits, '_', '.', '-': {instance!r}")
        self.settings = settings
        self.instance = instance
        self.worker = worker  # the process that owns what it starts (a label; see reap)
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self.pool = WarmPool(self, settings.warm_pool if settings.command_channel else 0,
                             settings.data_dir / "pool")
        if not self.pool.off and not slots.usable():
            self.pool.off = "warm sandboxes need root with CAP_SYS_ADMIN"
        self._handed: dict[int, Any] = {}  # task id -> the warm container it took (its label says task 0)

    # ---- plumbing ------------------------------------------------------------------------

    def client(self) -> docker.DockerClient:
        """The SDK client, made on first use (on a pool thread: it asks the engine its version)."""
        with self._client_lock:
            if self._client is None:
                self._client = docker.from_env(timeout=max(1, int(self.settings.docker_timeout_s)))
            return self._client

    async def call(self, operation: str, fn: Callable[..., Any], *args: Any,
                   timeout_s: float | None = None, **kwargs: Any) -> Any:
        """Run a blocking docker call on the pool; docker's errors become SandboxError."""
        loop = asyncio.get_running_loop()
        bound = timeout_s if timeout_s is not None else self.settings.docker_timeout_s
        future = loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        try:
            return await asyncio.wait_for(future, bound)
        except SandboxError:
            raise
        except asyncio.TimeoutError:
            raise SandboxError(f"Docker did not answer within {bound:g}s while trying to {operation} "
                               f"(DOCKER_HOST={docker_host()})", operation=operation, retryable=True) from None
        except Exception as exc:
            raise self._translate(operation, exc) from exc

    def _translate(self, operation: str, exc: Exception) -> SandboxError:
        image = self.settings.sandbox_image
        if isinstance(exc, docker.errors.ImageNotFound) or (
                isinstance(exc, docker.errors.NotFound) and "image" in str(exc).lower()):
            return SandboxError(f"The sandbox image {image} is missing: run `slackbot sandbox build`",
                                operation=operation)
        if isinstance(exc, docker.errors.APIError):
            reason = exc.explanation or str(exc)
            return SandboxError(f"Docker refused to {operation}: {reason}", operation=operation,
                                retryable=exc.is_server_error())
        if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException, OSError)):
            return SandboxError(f"Docker is not reachable (DOCKER_HOST={docker_host()}): {_reason(exc)}",
                                operation=operation, retryable=True)
        return SandboxError(f"Docker failed to {operation}: {exc}", operation=operation)

    def labels(self, task_id: int, role: str) -> dict[str, str]:
        return {LABEL_MANAGED: "1", LABEL_INSTANCE: self.instance, LABEL_TASK: str(task_id), LABEL_ROLE: role,
                LABEL_WORKER: self.worker}

    def base_env(self) -> dict[str, str]:
        return dict(BASE_ENV)

    def shape(self, cpus: float | None = None, memory: str | None = None) -> Shape:
        s = self.settings
        return Shape(s.sandbox_image, float(cpus or s.sandbox_cpus), memory or s.sandbox_memory)

    def host_config(self, mounts: tuple[Mount, ...], network: str, *, memory: str | None = None,
                    cpus: float | None = None) -> dict[str, Any]:
        """The confinement every task container shares; mounts, network and the task's limits differ."""
        s = self.settings
        memory = memory or s.sandbox_memory
        return {
            "mounts": [_docker_mount(m, self.labels(0, "volume")) for m in mounts],  # (named volumes outlive tasks)
            "tmpfs": {"/tmp": f"size={s.sandbox_tmp},mode=1777", "/var/tmp": "size=64m,mode=1777",
                      "/run": "size=16m,mode=755"},
            "read_only": True,
            # No log file on the host: output arrives by attach or exec, and a log would be a disk
            # the sandbox could fill (its pid 1's stdout is writable by the agent).
            "log_config": docker.types.LogConfig(type="none"),
            "network_mode": network or "none",
            "mem_limit": memory,
            "memswap_limit": memory,  # no swap beyond the memory limit
            "nano_cpus": int((cpus or s.sandbox_cpus) * 1e9),
            "pids_limit": s.sandbox_pids,
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "init": True,
        }

    # ---- the provider's API ----------------------------------------------------------------

    async def ping(self) -> None:
        await self.call("ping the engine", lambda: self.client().ping())

    async def image_exists(self, image: str | None = None) -> bool:
        name = image or self.settings.sandbox_image

        def check() -> bool:
            try:
                self.client().images.get(name)
                return True
            except docker.errors.ImageNotFound:
                return False

        return await self.call("look up the sandbox image", check)

    async def image_recipe(self) -> str:
        """The recipe label of the sandbox image ("" when it has none)."""
        def read() -> str:
            labels = self.client().images.get(self.settings.sandbox_image).labels or {}
            return labels.get("slackbot.recipe", "")
        return await self.call("inspect the sandbox image", read)

    async def start(self, *, task_id: int, mounts: tuple[Mount, ...], network: str = "",
                    env: dict[str, str] | None = None, cpus: float | None = None,
                    memory: str | None = None) -> DockerSandbox:
        """The agent's container: started idle; commands arrive by `exec`. `cpus` and `memory`: the
        task's limits, when an admin saved others than the environment's."""
        env = dict(env or {})
        leaked = [k for k, v in env.items() if v and v in self.settings.secrets()]
        if leaked:
            raise SandboxError(f"Refusing to pass the bot's own secrets into a sandbox ({', '.join(leaked)})",
                               operation="start a sandbox")
        name = f"slackbot-{self.instance}-task-{task_id}-{secrets.token_hex(3)}"
        handover = _Handover()

        def create() -> str:
            api = self.client().api
            container = api.create_container(
                self.settings.sandbox_image, command=["sleep", "infinity"], name=name, hostname="sandbox",
                labels=self.labels(task_id, "agent"), user=SANDBOX_USER, working_dir=WORKDIR,
                environment={**BASE_ENV, **env},
                host_config=api.create_host_config(**self.host_config(mounts, network, memory=memory, cpus=cpus)))
            try:
                api.start(container["Id"])
            except Exception:
                _force_remove(api, container["Id"])
                raise
            if not handover.give():  # the caller gave up meanwhile: nobody would ever remove it
                _force_remove(api, container["Id"])
            return container["Id"]

        try:
            container_id = await self.call("start a sandbox", create)
        except BaseException:
            if handover.abandon():  # it was made after all: remove it without waiting
                self._pool.submit(self._remove_named, name)
            raise
        return DockerSandbox(self, container_id=container_id, name=name, user=SANDBOX_USER,
                             channel=self.settings.command_channel)

    def keep_warm(self) -> None:
        """Starts filling the warm pool for the default shape (a running loop is needed)."""
        self.pool.warm(self.shape())

    async def take_warm(self, *, task_id: int, mounts: tuple[Mount, ...], cpus: float | None = None,
                        memory: str | None = None) -> DockerSandbox | None:
        """A started container from the warm pool with `mounts` bound in, or None: start() then."""
        pooled = await self.pool.take(self.shape(cpus, memory), task_id, mounts)
        if pooled is None:
            return None
        self._handed[task_id] = pooled
        return DockerSandbox(self, container_id=pooled.container_id, name=pooled.name, user=SANDBOX_USER,
                             pooled=pooled, on_close=lambda: self._handed.pop(task_id, None))

    async def run_step(self, step: Step) -> StepResult:
        """A one-shot container (clone, setup, finishing); always removed, however it ends."""
        from .exec_stream import ExecRun

        run = ExecRun()
        try:
            return await self.call(f"run the {step.name} step", run_step_sync, self, step, run,
                                   timeout_s=step.timeout_s + 30)
        except BaseException:
            run.abandoned = True  # the pool thread notices, stops reading and removes the container
            raise

    async def open_network(self, task_id: int, allow: tuple[str, ...]) -> tuple[str, dict[str, str]]:
        """A network of the task's own whose only way out is an egress proxy allowing `allow`;
        returns its name and the proxy variables for the containers on it."""
        try:
            return await self.call("make the task's network", nets.open_sync, self, task_id, allow,
                                   timeout_s=self.settings.docker_timeout_s * 2)
        except BaseException:
            await self.close_network(task_id)
            raise

    async def close_network(self, task_id: int) -> None:
        await self.call("remove the task's network", nets.close_sync, self, task_id)

    async def reap(self, live_workers: Collection[str] = ()) -> list[str]:
        """Removes this instance's containers and networks on this engine that belong to no live
        worker (their process died, or an older slackbot made them); returns the containers' names."""
        live_folders = {folder_of(w) for w in live_workers}
        return await self.call("remove leftover sandboxes", self._reap_sync,
                               lambda labels: labels.get(LABEL_WORKER) not in live_workers,
                               lambda folder: folder not in live_folders)

    async def remove_worker(self, worker: str) -> list[str]:
        """Removes what one (dead) worker left on this engine."""
        return await self.call("remove a dead worker's sandboxes", self._reap_sync,
                               lambda labels: labels.get(LABEL_WORKER) == worker,
                               lambda folder: folder == folder_of(worker))

    def _reap_sync(self, doomed: Callable[[dict[str, str]], bool],
                   doomed_folder: Callable[[str], bool]) -> list[str]:
        api = self.client().api
        removed = []
        for container in self._list(api):
            if doomed(container["Labels"]):
                _force_remove(api, container["Id"])
                removed.append(container["Names"][0].lstrip("/"))
        nets.remove_networks(self, doomed)
        # The warm slots of the same processes, once their containers are gone (this machine's only).
        if self.pool.root.is_dir():  # (a process's slot folder is named by a digest of its worker id)
            for folder in sorted(self.pool.root.glob("*")):
                if folder.is_dir() and not folder.is_symlink() and doomed_folder(folder.name):
                    slots.release_all(folder)
        return removed

    async def remove_task(self, task_id: int) -> None:
        """Force-removes every container and the network of one task: Stop, recovery, cleanup."""

        def remove_sync() -> None:
            api = self.client().api
            for container in self._list(api, task_id=task_id):
                _force_remove(api, container["Id"])
            pooled = self._handed.pop(task_id, None)
            if pooled is not None:
                self.pool.remove_sync(pooled)
            nets.close_sync(self, task_id)

        await self.call("remove a task's sandbox", remove_sync)

    async def remove_volume(self, name: str) -> None:
        def remove() -> None:
            try:
                self.client().api.remove_volume(name, force=True)
            except docker.errors.NotFound:
                pass
        await self.call("remove a volume", remove)

    async def aclose(self) -> None:
        try:
            await self.pool.drain()
        except Exception:  # the next start's reaping removes what is left
            log.warning("could not remove every warm sandbox", exc_info=True)
        # Threads still inside a call end by their own bounds; we do not wait for them here.
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def remove_later(self, container_id: str) -> None:
        """Removal off the caller's path; what a shutdown cuts short, the next reaping removes."""
        self.in_background(self._remove_named, container_id)

    def in_background(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            self._pool.submit(_logged, fn, *args)
        except RuntimeError:  # the pool is shut down
            pass

    def force_remove(self, container_id: str) -> None:
        _force_remove(self.client().api, container_id)

    def _remove_named(self, name: str) -> None:
        try:
            _force_remove(self.client().api, name)
        except Exception:  # reaping at the next start catches what is left
            pass

    def _list(self, api: Any, task_id: int | None = None) -> list[dict[str, Any]]:
        """This instance's containers (a task's: by its label, or by its name for a warm one)."""
        found = api.containers(all=True, filters={"label": [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={self.instance}"]})
        return found if task_id is None else [c for c in found if task_of(c) == task_id]


def _logged(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # the next reaping removes what is left
        log.warning("a background engine call failed", exc_info=True)


class _Handover:
    """Who removes a container whose start the caller gave up on: the thread that made it, or
    the caller, whichever comes second."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._abandoned = False
        self._given = False

    def give(self) -> bool:
        with self._lock:
            self._given = not self._abandoned
            return self._given

    def abandon(self) -> bool:
        """True when the container was made and handed over already: the caller removes it."""
        with self._lock:
            self._abandoned = True
            return self._given


def _docker_mount(m: Mount, labels: dict[str, str]) -> docker.types.Mount:
    if m.volume:
        return docker.types.Mount(m.target, m.source, type="volume", read_only=m.read_only,
                                  labels={k: v for k, v in labels.items() if k not in (LABEL_TASK, LABEL_WORKER)})
    return docker.types.Mount(m.target, m.source, type="bind", read_only=m.read_only)


def _force_remove(api: Any, container_id: str) -> None:
    """Removes a container; one already gone (or being removed) is not an error."""
    try:
        api.remove_container(container_id, force=True, v=False)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress
            raise


def _reason(exc: BaseException) -> str:
    """The innermost readable cause, without urllib3's nested wrapper text."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return str(exc) or type(exc).__name__


force_remove = _force_remove
