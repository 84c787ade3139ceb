"""Reading a docker exec's output stream with a deadline (docker-py's own reader cannot be bounded)."""

from __future__ import annotations

import secrets
import select
import struct
import time
from typing import Any

OUTPUT_KEEP_BYTES = 2 * 1024 * 1024  # kept from each end of a huge output


class ExecRun:
    """State shared between an exec's coroutine and its pool thread."""

    def __init__(self) -> None:
        self.marker = secrets.token_hex(8)
        self.abandoned = False


def read_frames(sock: Any, deadline: float, run: ExecRun) -> tuple[str, bool]:
    """Reads docker's multiplexed stdout/stderr frames in arrival order, until EOF or the deadline.

    docker-py's own reader polls without a timeout; ours wakes every second to notice a caller
    that gave up, so the pool thread never outlives the command's bound.
    """
    head, tail, dropped = bytearray(), bytearray(), 0
    buffer = b""
    while True:
        if run.abandoned or time.monotonic() > deadline:
            return _decode(head, tail, dropped), False
        ready, _, _ = select.select([sock], [], [], min(1.0, max(0.0, deadline - time.monotonic())))
        if not ready:
            continue
        chunk = sock.recv(65536) if hasattr(sock, "recv") else sock.read(65536)
        if not chunk:
            return _decode(head, tail, dropped), True
        buffer += chunk
        while len(buffer) >= 8:
            _, length = struct.unpack(">BxxxL", buffer[:8])
            if len(buffer) < 8 + length:
                break
            data, buffer = buffer[8:8 + length], buffer[8 + length:]
            if len(head) < OUTPUT_KEEP_BYTES:
                room = OUTPUT_KEEP_BYTES - len(head)
                head += data[:room]
                data = data[room:]
            tail += data
            if len(tail) > OUTPUT_KEEP_BYTES:
                dropped += len(tail) - OUTPUT_KEEP_BYTES
                del tail[:len(tail) - OUTPUT_KEEP_BYTES]


def _decode(head: bytearray, tail: bytearray, dropped: int) -> str:
    text = head.decode("utf-8", errors="replace")
    if dropped:
        text += f"\n[... {dropped} bytes of output omitted ...]\n"
    return text + tail.decode("utf-8", errors="replace")
