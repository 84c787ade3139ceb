"""Copying a file into a running sandbox's workspace, as the sandbox user, through the engine.

The host never writes into a workspace (issue 5): the bytes go to the stdin of a small trusted
program exec'd in the container (the image's python, isolated mode, no shell and no startup file).
Everything under /workspace is the agent's, so the program opens the target folder with O_NOFOLLOW
relative to /workspace and refuses one that is not a plain folder; the file is written under a fresh
random name and renamed into place, which replaces a file or link of that name and never follows it.
"""

from __future__ import annotations

import time
from typing import IO, Any, BinaryIO, cast

from .exec_stream import ExecRun, pump

PYTHON = "/usr/bin/python3"  # the image's (the root filesystem is read-only): not whatever PATH finds
WORKDIR = "/workspace"
PROGRAM = r"""
import os, secrets, sys
folder, name, size, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if "/" in folder or "/" in name or name in (".", "..") or folder in (".", "..") or base not in ("/workspace", "/tmp"):
    print("bad name"); sys.exit(2)
ws = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
try:
    os.mkdir(folder, 0o755, dir_fd=ws)
except FileExistsError:
    pass
try:
    d = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=ws)
except OSError:
    print(f"{folder} in {base} is not a folder (a link or a file is in its place)"); sys.exit(3)
tmp = ".incoming-" + secrets.token_hex(8)
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=d)
left = size
with os.fdopen(fd, "wb") as out:
    while left > 0:
        chunk = sys.stdin.buffer.read(min(left, 65536))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)
if left:
    os.unlink(tmp, dir_fd=d); print("the file arrived incomplete"); sys.exit(4)
try:
    os.replace(tmp, name, src_dir_fd=d, dst_dir_fd=d)
except OSError as exc:
    os.unlink(tmp, dir_fd=d); print(f"a folder or something else named so is in the way ({exc.strerror})"); sys.exit(5)
print("placed")
"""


def put_file_sync(api: Any, container_id: str, *, user: str, folder: str, name: str, data: IO[bytes], size: int,
                  timeout_s: float, base: str = WORKDIR) -> str:
    """Writes `size` bytes of `data` to `base`/`folder`/`name` (`base`: /workspace, or /tmp while the
    workspace is read-only); "" when done, else why not. Blocking: run it on the provider's pool."""
    argv = [PYTHON, "-I", "-c", PROGRAM, folder, name, str(size), base]
    exec_id = api.exec_create(container_id, argv, stdin=True, stdout=True, stderr=True, tty=False, user=user,
                              workdir=WORKDIR)["Id"]
    sock = api.exec_start(exec_id, socket=True)
    try:
        pumped = pump(sock, time.monotonic() + timeout_s, ExecRun(), stdin=cast(BinaryIO, data))
    finally:
        try:
            sock.close()
        except OSError:
            pass
    info = api.exec_inspect(exec_id)
    last = (pumped.output.strip().splitlines() or [""])[-1][:200]
    if not pumped.finished or info.get("Running"):
        return "copying it into the sandbox took too long"
    if info.get("ExitCode") != 0 or last != "placed":
        return last or f"copying it into the sandbox failed (exit {info.get('ExitCode')})"
    return ""
