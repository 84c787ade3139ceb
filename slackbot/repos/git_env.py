"""Host-side git: one way to run it, always with a timeout, an executor of its own, and an environment
that carries what fetches and pushes need but none of the bot's tokens.

Host git only ever runs on host-only repositories (mirrors, scratch repositories, throwaway
repositories an incoming result is unbundled into). It never runs inside a workspace.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from .errors import GitFailed

T = TypeVar("T")

# What git (and the ssh or credential helper it starts) may need from the bot's environment.
PASSED_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "XDG_CONFIG_HOME",
    "SSH_AUTH_SOCK", "SSH_AGENT_PID", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "SSH_ASKPASS",
    "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
)

# Nothing a repository or the network can use to start a program on the host.
HARDENED_CONFIG = [
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("protocol.ext.allow", "never"),
    ("protocol.fd.allow", "never"),
]


def config_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Git configuration passed through the environment (command scope; never written to a file)."""
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for i, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{i}"] = key
        env[f"GIT_CONFIG_VALUE_{i}"] = value
    return env


def host_env(extra: Mapping[str, str] | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a host git process: passed names only, never a token of the bot's."""
    source = os.environ if base is None else base
    env = {k: source[k] for k in PASSED_ENV if k in source}
    env.update({"LC_ALL": "C", "LANGUAGE": "C", "GIT_TERMINAL_PROMPT": "0"})
    env.update(extra or {})
    return env


def run_git(args: list[str], *, cwd: os.PathLike[str] | str | None = None, env: Mapping[str, str] | None = None,
            timeout_s: float = 300.0, stdin_path: str | None = None, stdin_text: str | None = None) -> str:
    """Runs git (blocking: call through GitRunner.run); returns stdout, raises GitFailed with stderr."""
    return run_git_capped(args, cwd=cwd, env=env, timeout_s=timeout_s, stdin_path=stdin_path,
                          stdin_text=stdin_text)[0]


def run_git_capped(args: list[str], *, cwd: os.PathLike[str] | str | None = None,
                   env: Mapping[str, str] | None = None, timeout_s: float = 300.0, stdin_path: str | None = None,
                   stdin_text: str | None = None, cap: int | None = None) -> tuple[str, bool]:
    """Like run_git, reading at most `cap` bytes of stdout (the rest is dropped; the flag says so)."""
    assert cap is None or stdin_text is None, "a capped read feeds no input"
    config = config_env(HARDENED_CONFIG + _extra_pairs(env))
    full_env = host_env({**(env or {}), **config})
    stdin: Any = open(stdin_path, "rb") if stdin_path else subprocess.PIPE if stdin_text is not None else (
        subprocess.DEVNULL)
    try:
        proc = subprocess.Popen(["git", *args], cwd=cwd, env=full_env, stdin=stdin, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    finally:
        if stdin_path:
            stdin.close()
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        if cap is None:
            out, err = proc.communicate(stdin_text.encode() if stdin_text is not None else None)
            truncated = False
        else:
            out, err, truncated = _read_capped(proc, cap)
    finally:
        timer.cancel()
    if killed.is_set():
        raise GitFailed(args, -1, f"fatal: timed out after {timeout_s:.0f} s")
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    if proc.returncode != 0 and not truncated:
        raise GitFailed(args, proc.returncode, stderr, stdout)
    return stdout, truncated


def _extra_pairs(env: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Callers pass their own GIT_CONFIG_* pairs in `env`: merge them after ours."""
    if not env or "GIT_CONFIG_COUNT" not in env:
        return []
    count = int(env["GIT_CONFIG_COUNT"])
    return [(env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"]) for i in range(count)]


def _read_capped(proc: subprocess.Popen[bytes], cap: int) -> tuple[bytes, bytes, bool]:
    assert proc.stdout is not None and proc.stderr is not None
    stderr = proc.stderr
    err_chunks: list[bytes] = []

    def drain() -> None:  # keeps the first MiB, reads the rest away so git never blocks on it
        while chunk := stderr.read(65536):
            if sum(map(len, err_chunks)) < 1 << 20:
                err_chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out = proc.stdout.read(cap + 1)
    truncated = len(out) > cap
    if truncated:
        proc.kill()
    proc.wait()
    reader.join(timeout=5)
    proc.stdout.close()
    stderr.close()
    return out[:cap], b"".join(err_chunks), truncated


class GitRunner:
    def __init__(self, workers: int = 4, timeout_s: float = 300.0) -> None:
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="git")
        self.timeout_s = timeout_s

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout_s + 30):
            return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
