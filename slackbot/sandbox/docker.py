"""Docker sandboxes: one container per task, its workspace mounted at /workspace.

The docker SDK blocks, so every engine call runs on the provider's own bounded thread pool and
is bounded by `asyncio.wait_for`. A caller-side timeout cannot stop a thread, so each blocking
call also carries its own bound (the client's socket timeout for engine calls, a read deadline
for command output): a thread given up on by its caller frees itself soon after, and the pool
cannot fill up with stuck calls.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors
import requests.exceptions
from docker.utils import kwargs_from_env

from slackbot.protocol import ExecResult

from .exec_stream import ExecRun, read_frames

WORKDIR = "/workspace"
SANDBOX_UID = 1000  # the image's `agent` user
NETWORKS = ("off", "setup", "on")
KILL_GRACE_S = 5  # `timeout -k`: SIGKILL this long after SIGTERM
READ_GRACE_S = 10  # how long past timeout_s we keep reading before giving up on a command
CALLER_GRACE_S = 15  # the caller's own bound, above READ_GRACE_S so the thread gives up first
LABEL_MANAGED = "slackbot.managed"
LABEL_INSTANCE = "slackbot.instance"
LABEL_TASK = "slackbot.task"
_INSTANCE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,39}$")


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

    def __init__(self, settings: Any, *, instance: str, max_workers: int = 8):
        if not _INSTANCE_RE.match(instance):
            raise ValueError(f"instance must be a short name of letters, digits, '_', '.', '-': {instance!r}")
        self.settings = settings
        self.instance = instance
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="docker")
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()

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

    async def start(self, *, task_id: int, workspace: Path, network: str = "off",
                    env: dict[str, str] | None = None) -> "DockerSandbox":
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}: {network!r}")
        env = dict(env or {})
        leaked = [k for k, v in env.items() if v and v in self.settings.secrets()]
        if leaked:
            raise SandboxError(f"Refusing to pass the bot's own secrets into a sandbox ({', '.join(leaked)})",
                               operation="start a sandbox")
        workspace = Path(workspace).resolve()
        if not workspace.is_dir():
            raise SandboxError(f"The workspace {workspace} does not exist", operation="start a sandbox")
        name = f"slackbot-{self.instance}-task-{task_id}-{secrets.token_hex(3)}"
        user, home = _sandbox_user()
        # Only what we choose: the SDK never forwards the host's environment, and we add nothing of it.
        environment = {"HOME": home, "LANG": "C.UTF-8", "TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat",
                       "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", **env}

        def create() -> tuple[str, str]:
            if os.geteuid() == 0:
                _chown_tree(workspace, SANDBOX_UID, SANDBOX_UID)
            client = self.client()
            container = client.containers.create(
                self.settings.sandbox_image,
                command=["sleep", "infinity"],
                name=name,
                hostname="sandbox",
                labels={LABEL_MANAGED: "1", LABEL_INSTANCE: self.instance, LABEL_TASK: str(task_id)},
                user=user,
                working_dir=WORKDIR,
                environment=environment,
                volumes={str(workspace): {"bind": WORKDIR, "mode": "rw"}},
                network_mode="none" if network == "off" else "bridge",
                mem_limit=self.settings.sandbox_memory,
                memswap_limit=self.settings.sandbox_memory,  # no swap beyond the memory limit
                nano_cpus=int(self.settings.sandbox_cpus * 1e9),
                pids_limit=self.settings.sandbox_pids,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                init=True,
                detach=True,
            )
            try:
                container.start()
            except Exception:
                _force_remove(client, container.id)
                raise
            return container.id, name

        container_id, name = await self.call("start a sandbox", create)
        return DockerSandbox(self, container_id=container_id, name=name, user=user, network=network)

    async def reap(self, keep_task_ids: Any = frozenset()) -> list[str]:
        """Removes this instance's containers of tasks not in `keep_task_ids` (after a restart)."""
        keep = {str(t) for t in keep_task_ids}

        def reap_sync() -> list[str]:
            client = self.client()
            removed = []
            for container in self._list(client):
                if container.labels.get(LABEL_TASK) not in keep:
                    _force_remove(client, container.id)
                    removed.append(container.name)
            return removed

        return await self.call("remove leftover sandboxes", reap_sync)

    async def remove_task(self, task_id: int) -> None:
        """Force-removes the container(s) of one task: Stop, and recovery after a restart."""

        def remove_sync() -> None:
            client = self.client()
            for container in self._list(client, task_id=task_id):
                _force_remove(client, container.id)

        await self.call("remove a task's sandbox", remove_sync)

    async def aclose(self) -> None:
        # Threads still inside a call end by their own bounds; we do not wait for them here.
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def _list(self, client: docker.DockerClient, task_id: int | None = None) -> list[Any]:
        labels = [f"{LABEL_MANAGED}=1", f"{LABEL_INSTANCE}={self.instance}"]
        if task_id is not None:
            labels.append(f"{LABEL_TASK}={task_id}")
        return client.containers.list(all=True, filters={"label": labels})


class DockerSandbox:
    """One task's container. Commands run as the sandbox user in /workspace, bounded inside the container."""

    def __init__(self, provider: DockerSandboxes, *, container_id: str, name: str, user: str, network: str):
        self._provider = provider
        self._container_id = container_id
        self._name = name
        self._user = user
        self.network = network
        self._closed = False

    @property
    def container_id(self) -> str:
        return self._container_id

    @property
    def container_name(self) -> str:
        return self._name

    async def exec(self, command: str, *, timeout_s: float) -> ExecResult:
        run = ExecRun()
        try:
            return await self._provider.call(
                "run a command in the sandbox", self._exec_sync, command, timeout_s, run,
                timeout_s=timeout_s + CALLER_GRACE_S)
        except BaseException:
            # Cancelled (Stop) or given up on: the pool thread sees this and kills the command.
            run.abandoned = True
            raise

    def _exec_sync(self, command: str, timeout_s: float, run: "ExecRun") -> ExecResult:
        api = self._provider.client().api
        started = time.monotonic()
        # `timeout` puts the command in its own process group and signals all of it, then SIGKILLs
        # it: the command dies in the container even though docker exec has no kill of its own.
        argv = ["timeout", "-k", str(KILL_GRACE_S), f"{timeout_s:g}", "bash", "-lc", command]
        exec_id = api.exec_create(self._container_id, argv, stdout=True, stderr=True, tty=False,
                                  user=self._user, workdir=WORKDIR,
                                  environment={"SLACKBOT_EXEC": run.marker})["Id"]
        sock = api.exec_start(exec_id, socket=True)
        deadline = started + timeout_s + KILL_GRACE_S + READ_GRACE_S
        try:
            output, finished = read_frames(sock, deadline, run)
        finally:
            _close_quietly(sock)
        duration = time.monotonic() - started
        info = api.exec_inspect(exec_id)
        if not finished or info.get("Running"):
            # Abandoned or outlived every bound: make sure nothing of it keeps running.
            self._kill_marked(api, run.marker)
            return ExecResult(exit_code=124, output=output + "\n[command killed: it outlived its time limit]",
                              timed_out=True, duration_s=duration)
        code = int(info.get("ExitCode") if info.get("ExitCode") is not None else -1)
        timed_out = code in (124, 137) and duration >= timeout_s - 0.5
        return ExecResult(exit_code=code, output=output, timed_out=timed_out, duration_s=duration)

    def _kill_marked(self, api: Any, marker: str) -> None:
        """SIGKILLs every process of one exec (they inherit its SLACKBOT_EXEC marker)."""
        script = (f'for p in /proc/[0-9]*; do grep -qxz "SLACKBOT_EXEC={marker}" "$p/environ" 2>/dev/null '
                  '&& kill -9 "${p#/proc/}" 2>/dev/null; done; true')
        try:
            api.exec_start(api.exec_create(self._container_id, ["sh", "-c", script], user=self._user)["Id"])
        except docker.errors.APIError:
            pass  # the container is gone, and the command with it

    async def disconnect_network(self) -> None:
        """Ends the network of a `setup` sandbox (a container started without one cannot get one later)."""

        def disconnect() -> None:
            api = self._provider.client().api
            networks = api.inspect_container(self._container_id)["NetworkSettings"]["Networks"] or {}
            for net in list(networks):
                if net != "none":
                    api.disconnect_container_from_network(self._container_id, net, force=True)

        await self._provider.call("disconnect the sandbox from the network", disconnect)
        self.network = "off"

    async def close(self) -> None:
        if self._closed:
            return
        await self._provider.call("remove the sandbox",
                                  lambda: _force_remove(self._provider.client(), self._container_id))
        self._closed = True


def _sandbox_user() -> tuple[str, str]:
    """uid:gid for the container, and its HOME.

    As root we hand the workspace to the image's user; otherwise the container runs as us, so
    files it writes stay ours on the host (that uid has no home in the image: use /tmp).
    """
    if os.geteuid() == 0:
        return f"{SANDBOX_UID}:{SANDBOX_UID}", "/home/agent"
    if os.geteuid() == SANDBOX_UID:
        return f"{SANDBOX_UID}:{os.getegid()}", "/home/agent"
    return f"{os.geteuid()}:{os.getegid()}", "/tmp"


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            try:
                os.chown(path, uid, gid, follow_symlinks=False)
            except FileNotFoundError:
                pass


def _force_remove(client: docker.DockerClient, container_id: str) -> None:
    """Removes a container; one already gone (or being removed) is not an error."""
    try:
        client.api.remove_container(container_id, force=True, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: removal already in progress
            raise


def _close_quietly(sock: Any) -> None:
    try:
        if hasattr(sock, "shutdown"):
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _reason(exc: BaseException) -> str:
    """The innermost readable cause, without urllib3's nested wrapper text."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return str(exc) or type(exc).__name__
