"""One-shot containers: made, attached, fed and read with a deadline, and always removed.

The clone, setup and finishing steps each run in a fresh container of their own, so nothing the
agent started can be running when they run, and their network or mounts never reach the agent's
container.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from typing import Any, BinaryIO

from slackbot.protocol import Step, StepResult

from .exec_stream import ExecRun, pump

WAIT_S = 10  # for the exit status once the stream has ended
DRAIN_S = 30  # the longest a killed container's stream is read to its end


def run_step_sync(provider: Any, step: Step, run: ExecRun) -> StepResult:
    """Blocking: runs on the provider's pool (see DockerSandboxes.run_step)."""
    from .docker import BASE_ENV, SANDBOX_USER, WORKDIR, force_remove

    api = provider.client().api
    name = f"slackbot-{provider.instance}-task-{step.task_id}-{step.name}-{secrets.token_hex(3)}"
    feed = bool(step.stdin_path)
    container = api.create_container(
        provider.settings.sandbox_image, command=list(step.argv), name=name, hostname="sandbox",
        labels=provider.labels(step.task_id, step.name), user=SANDBOX_USER, working_dir=WORKDIR,
        environment={**BASE_ENV, **dict(step.env)}, stdin_open=feed, tty=False,
        host_config=api.create_host_config(**provider.host_config(step.mounts, step.network)))
    cid = container["Id"]
    started = time.monotonic()
    exited = False
    sock = None
    try:
        sock = api.attach_socket(cid, params={"stdin": int(feed), "stdout": 1, "stderr": 1, "stream": 1})
        api.start(cid)
        with contextlib.ExitStack() as files:
            stdin: BinaryIO | None = files.enter_context(open(step.stdin_path, "rb")) if feed else None
            stdout: BinaryIO | None = (files.enter_context(open(step.stdout_path, "wb"))
                                        if step.stdout_path else None)
            pumped = pump(sock, started + step.timeout_s, run, stdin=stdin, stdout=stdout,
                          stdout_cap=step.stdout_cap)
        duration = time.monotonic() - started
        if not pumped.finished:
            _kill_draining(api, cid, sock)
            reason = ("[its output went over the size limit]" if pumped.stdout_over_cap
                      else f"[killed: it outlived its time limit of {step.timeout_s:g} s]")
            return StepResult(124, pumped.output + "\n" + reason, timed_out=not pumped.stdout_over_cap,
                              stdout_bytes=pumped.stdout_bytes, stdout_over_cap=pumped.stdout_over_cap,
                              duration_s=duration)
        status = api.wait(cid, timeout=WAIT_S)
        exited = True
        return StepResult(int(status.get("StatusCode", -1)), pumped.output, stdout_bytes=pumped.stdout_bytes,
                          duration_s=duration)
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if exited:  # nothing runs in it any more: its removal need not delay the task
            provider.remove_later(cid)
        else:
            force_remove(api, cid)


def _kill_draining(api: Any, cid: str, sock: Any) -> None:
    """Kills a container that is still writing. Its stream is read (and dropped) meanwhile: the engine
    (20.10) can hang a kill or removal behind an attached stream nobody reads."""
    raw = getattr(sock, "_sock", sock)
    done = threading.Event()

    def drain() -> None:
        deadline = time.monotonic() + DRAIN_S
        with contextlib.suppress(OSError):
            raw.settimeout(1.0)
            while not done.is_set() and time.monotonic() < deadline:
                try:
                    if not raw.recv(65536):
                        return
                except TimeoutError:
                    continue

    reader = threading.Thread(target=drain, daemon=True, name="step-drain")
    reader.start()
    try:
        api.kill(cid)
    except Exception:  # already gone: the removal that follows is all that is left
        pass
    reader.join(DRAIN_S)
    done.set()
