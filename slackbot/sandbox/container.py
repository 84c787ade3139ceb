"""The agent's container: commands run as the sandbox user in /workspace, bounded inside the container."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import IO, Any, Awaitable, Callable

import docker.errors

from slackbot.protocol import ExecResult, Mount

from .channel import Channel
from .exec_stream import ExecRun, read_frames
from .upload import put_file_sync

WORKDIR = "/workspace"
KILL_GRACE_S = 5  # `timeout -k`: SIGKILL this long after SIGTERM
READ_GRACE_S = 10  # how long past timeout_s we keep reading before giving up on a command
CALLER_GRACE_S = 15  # the caller's own bound, above READ_GRACE_S so the thread gives up first
DU_TIMEOUT_S = 60


class DockerSandbox:
    def __init__(self, provider: Any, *, container_id: str, name: str, user: str, channel: bool = True,
                 pooled: Any = None, on_close: Callable[[], object] | None = None):
        """`channel`: commands go through the persistent command channel (channel.py) while it works.
        `pooled`: a warm container (pool.py), its channel open and its directories bound into its slot."""
        self._provider = provider
        self._container_id = container_id
        self._name = name
        self._user = user
        self._closed = False
        self._use_channel = channel
        self._channel: Channel | None = pooled.channel if pooled is not None else None
        self._pooled = pooled
        self._on_close = on_close

    @property
    def container_id(self) -> str:
        return self._container_id

    @property
    def container_name(self) -> str:
        return self._name

    @property
    def mounts_later(self) -> bool:
        """True for a warm container: `with_mount` can lend it a directory for a while."""
        return self._pooled is not None

    async def exec(self, command: str, *, timeout_s: float, env: dict[str, str] | None = None,
                   login: bool = True) -> ExecResult:
        """`login`: with the environment a login shell's startup files give (off: none of them is read)."""
        run = ExecRun()
        try:
            return await self._provider.call(
                "run a command in the sandbox", self._exec_sync, command, timeout_s, run, env or {}, login,
                timeout_s=timeout_s + CALLER_GRACE_S)
        except BaseException:
            # Cancelled (Stop) or given up on: the pool thread sees this and kills the command.
            run.abandoned = True
            raise

    async def bind(self, mounts: tuple[Mount, ...]) -> None:
        """A warm container's directories for its task, once they are ready (all or none)."""
        await _whole(self._provider.call("give the sandbox its directories", self._provider.pool.bind_sync,
                                         self._pooled, mounts))

    async def with_mount(self, mount: Mount, command: str, *, timeout_s: float, env: dict[str, str]) -> ExecResult:
        """Runs one command with `mount` bound in (a warm container's /mirror, for the first checkout);
        the bind is gone again before this returns, or the sandbox is removed and the task fails."""
        slot = self._pooled.slot
        await _whole(self._provider.call("lend the sandbox a directory", slot.bind, mount.source, mount.target,
                                         read_only=mount.read_only))
        try:
            # No startup file of the home directory runs while the directory is lent (it could copy it).
            return await self.exec(command, timeout_s=timeout_s, env=env, login=False)
        finally:
            try:
                await self._provider.call("take a directory back from the sandbox", slot.unbind, mount.target)
            except BaseException:
                await self.close()
                raise

    def _exec_sync(self, command: str, timeout_s: float, run: ExecRun, env: dict[str, str],
                   login: bool = True) -> ExecResult:
        api = self._provider.client().api
        env = {**env, "SLACKBOT_EXEC": run.marker}
        if self._use_channel:
            if self._channel is None:
                self._channel = Channel(api, self._container_id, user=self._user, workdir=WORKDIR)
            result = self._channel.run(command, timeout_s=timeout_s, grace_s=KILL_GRACE_S, read_grace_s=READ_GRACE_S,
                                       env=env, run=run, kill=lambda: self._kill_marked(api, run.marker), login=login)
            if result is not None:
                return result
        started = time.monotonic()
        # `timeout` puts the command in its own process group and signals all of it, then SIGKILLs
        # it: the command dies in the container even though docker exec has no kill of its own.
        shell = ["bash", "-lc"] if login else ["bash", "--noprofile", "--norc", "-c"]
        argv = ["timeout", "-k", str(KILL_GRACE_S), f"{timeout_s:g}", *shell, command]
        exec_id = api.exec_create(self._container_id, argv, stdout=True, stderr=True, tty=False,
                                  user=self._user, workdir=WORKDIR, environment=env)["Id"]
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

    async def put_file(self, folder: str, name: str, data: IO[bytes], size: int, *, timeout_s: float = 120,
                       base: str = WORKDIR) -> str:
        """Copies a file into `base`/`folder`/ as the sandbox user (upload.py); "" when placed,
        else why not (the workspace's own state: a link where the folder should be)."""
        def put() -> str:
            return put_file_sync(self._provider.client().api, self._container_id, user=self._user, folder=folder,
                                 name=name, data=data, size=size, timeout_s=timeout_s, base=base)
        return str(await self._provider.call("copy a file into the sandbox", put, timeout_s=timeout_s + 15))

    async def disk_usage(self) -> int:
        """Bytes the workspace and home take on disk (allocated blocks: a sparse file counts what it
        holds). `du` is started directly, not through a shell the agent's profile could change."""
        return await self._provider.call("measure the workspace", self._du_sync, timeout_s=DU_TIMEOUT_S + 15)

    def _du_sync(self) -> int:
        api = self._provider.client().api
        argv = ["timeout", "-k", "5", str(DU_TIMEOUT_S), "du", "-sxc", "--block-size=1", WORKDIR, "/home/agent"]
        exec_id = api.exec_create(self._container_id, argv, stdout=True, stderr=False, user=self._user)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        try:
            output, _ = read_frames(sock, time.monotonic() + DU_TIMEOUT_S + 10, ExecRun())
        finally:
            _close_quietly(sock)
        last = output.strip().splitlines()[-1:] or [""]
        total = last[0].split("\t")[0]
        if not last[0].endswith("total") or not total.isdigit():
            raise RuntimeError(f"could not measure the workspace: {output.strip()[-200:]}")
        return int(total)

    async def close(self) -> None:
        if self._closed:
            return
        if self._channel is not None:
            self._channel.close()
        if self._pooled is not None:  # its slot's binds go too, before the workspace is unmounted
            await self._provider.call("remove the sandbox", self._provider.pool.remove_sync, self._pooled)
        else:
            await self._provider.call("remove the sandbox", self._provider.force_remove, self._container_id)
        self._closed = True
        if self._on_close is not None:
            self._on_close()


async def _whole(call: Awaitable[Any]) -> Any:
    """Awaits an engine call to its end even when cancelled (then raised after): a removal must not
    run beside binds still being made."""
    job = asyncio.ensure_future(call)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        await asyncio.gather(job, return_exceptions=True)
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
