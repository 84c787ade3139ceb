"""Files attached in Slack, taken into the task's workspace under `.slack-files/`.

The Slack side records each file with its task or steering reply ({id, name, size, mimetype, url},
or an `error` it found already). When the task runs, each file is downloaded (downloads.py: the bot
token, Slack's hosts only, size-capped while it streams) into host-only scratch space and copied
into the agent's container through the engine (sandbox/upload.py): the host never writes into a
workspace. The request names the files placed; images also go to the model as image input, kept
out of the stored history (agent/model.py holds them for this run's requests). What could not be
taken is said in the thread (an `error` item that the Slack front posts); the task runs with the rest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import secrets
import tempfile
import unicodedata
from dataclasses import dataclass, replace
from typing import IO, Any, Awaitable, Callable, Protocol, runtime_checkable

from ..agent.model import IMAGE_MARKER
from ..protocol import ErrorItem, Event, ItemCompleted, Steer, TaskRef
from ..settings import Settings
from ..store import Store, Task
from .downloads import FetchError, HttpFetcher, Origins, TooLarge

log = logging.getLogger(__name__)
FOLDER = ".slack-files"
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
IMAGE_MAX = 5 << 20  # larger images are only placed as files
IMAGES_TOTAL = 20 << 20  # image input a run holds in memory, all requests together
NAME_BYTES = 120  # a base name's length cap (UTF-8 bytes), extension kept
FILES_MAX = 20  # per message (Slack allows 10)
Emit = Callable[[Event], Awaitable[None]]


class FileFetcher(Protocol):
    async def fetch(self, url: str, out: IO[bytes], *, limit: int, html_ok: bool = False) -> int: ...


@runtime_checkable
class TakesFiles(Protocol):
    async def put_file(self, folder: str, name: str, data: IO[bytes], size: int, *, base: str = ...) -> str: ...


@runtime_checkable
class TakesImages(Protocol):
    def add_image(self, token: str, data_url: str) -> bool: ...


@dataclass(frozen=True)
class Attachment:
    """One attached file as the store keeps it; `error`: why the Slack side could not describe it."""

    id: str
    name: str
    size: int = 0
    mimetype: str = ""
    url: str = ""
    error: str = ""


def parse_files(text: str) -> list[Attachment]:
    """A `files` column (JSON written by the Slack side, shaped by events people send): what is not
    an object with a string id is skipped."""
    try:
        raw = json.loads(text or "[]")
    except ValueError:
        return []
    out = []
    for f in raw[:FILES_MAX] if isinstance(raw, list) else []:
        if isinstance(f, dict) and isinstance(f.get("id"), str):
            size = f.get("size")
            out.append(Attachment(id=f["id"][:40], name=str(f.get("name") or "")[:1000],
                                  size=size if isinstance(size, int) and size >= 0 else 0,
                                  mimetype=str(f.get("mimetype") or "")[:100], url=str(f.get("url") or ""),
                                  error=str(f.get("error") or "")[:300]))
    return out


def safe_name(name: str, fallback: str) -> str:
    """A base name safe to create: no folders, no control or format characters (newlines, bidi
    overrides), no leading dots or dashes, at most NAME_BYTES; `fallback` when nothing is left."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(" " if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c for c in name)
    name = "".join(c for c in name if unicodedata.category(c)[0] not in "CZ" or c == " ")
    name = " ".join(name.split()).lstrip(".- ")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or not ext or len(ext.encode()) > 16:
        stem, ext = name, ""
    while stem and len(f"{stem}.{ext}".encode() if ext else stem.encode()) > NAME_BYTES:
        stem = stem[:-1]
    name = f"{stem.rstrip()}.{ext}" if ext else stem.rstrip()
    if not name.lstrip(".-"):
        name = "file-" + re.sub(r"[^A-Za-z0-9]", "", fallback)[:20]
    return name


def unique(name: str, taken: set[str]) -> str:
    """`name`, or `name-2.ext`… when this message already has one so named."""
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    n, out = 1, name
    while out.lower() in taken:
        n += 1
        out = f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}"
    taken.add(out.lower())
    return out


def shown_size(n: int) -> str:
    for unit, size in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes" if n != 1 else "1 byte"


@dataclass(frozen=True)
class Placed:
    name: str
    size: int
    mimetype: str
    image: str = ""  # the image-input marker, when the model gets it as an image too


def listing(placed: list[Placed], base: str = "/workspace") -> str:
    """What the request (or a steering message) says about its files."""
    if not placed:
        return ""
    lines = [f"Attached files (in {base}/{FOLDER}/):"]
    for p in placed:
        kind = f", {p.mimetype}" if p.mimetype else ""
        image = f"; also shown to you as an image: {p.image}" if p.image else ""
        lines.append(f"- {p.name} ({shown_size(p.size)}{kind}{image})")
    return "\n".join(lines)


class Attachments:
    """One run's attached files: the task's, placed before its first model call, and each steering
    reply's as the reply is read (`inbox`, the agent's inbox)."""

    def __init__(self, settings: Settings, store: Store, ref: TaskRef, sandbox: Any, model: Any, emit: Emit,
                 fetcher: FileFetcher | None = None, base: str = "/workspace") -> None:
        self.settings, self.store, self.ref, self.sandbox, self.model, self.emit = (
            settings, store, ref, sandbox, model, emit)
        self.base = base  # /tmp while the workspace is read-only (a plan phase)
        self.fetcher = fetcher or HttpFetcher(settings.slack_bot_token, Origins(settings.slack_api_url))
        self.limit = settings.size("attachment_max")
        self.note = ""  # the request's listing, once the task's files are placed
        self._images_left = IMAGES_TOTAL if settings.image_input != "off" else 0
        self._said = 0

    async def place_task_files(self, task: Task) -> str:
        self.note = await self.place(parse_files(task.files))
        return self.note

    async def inbox(self) -> list[Steer]:
        """The thread's unread replies, as the agent's inbox gives them; files they bring are
        placed first and listed in the reply's text."""
        steers = []
        for row in await self.store.take_inbox(self.ref.thread_id, self.ref.task_id):
            steer = Steer(text=row.text, user=row.user, user_name=row.user_name, ts=row.ts)
            note = await self.place(parse_files(row.files))
            steers.append(replace(steer, text=f"{steer.text}\n\n{note}".strip()) if note else steer)
        return steers

    async def place(self, files: list[Attachment]) -> str:
        """Places what it can of `files`; says in the thread what it could not. The listing."""
        if not files:
            return ""
        self.settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        ready = getattr(self.sandbox, "ready", None)
        if ready is not None:
            await ready()  # (a warm sandbox's first checkout: the files go into the made workspace)
        placed: list[Placed] = []
        taken: set[str] = set()
        for f in files:
            shown = safe_name(f.name, f.id)
            why = f.error or self._refused(f)
            if not why:
                try:
                    placed.append(await self._place_one(f, unique(shown, taken)))
                    continue
                except TooLarge as exc:
                    why = self._too_large(max(exc.seen, f.size))
                except FetchError as exc:
                    why = str(exc)
                except Exception as exc:  # a sandbox or engine failure: the task goes on without it
                    log.warning("task %s: could not place %s", self.ref.task_id, f.id, exc_info=True)
                    why = str(exc)[:200] or exc.__class__.__name__
            await self._say(f"I could not take {shown}: {why}")
        return listing(placed, self.base)

    def _refused(self, f: Attachment) -> str:
        if not isinstance(self.sandbox, TakesFiles):
            return "this sandbox cannot take files"
        if not f.url:
            return "Slack gave no download link for it"
        if f.size > self.limit:
            return self._too_large(f.size)
        return ""

    def _too_large(self, size: int) -> str:
        return f"it is {shown_size(size)}; the limit is {shown_size(self.limit)} (SLACKBOT_ATTACHMENT_MAX)"

    async def _place_one(self, f: Attachment, name: str) -> Placed:
        with tempfile.SpooledTemporaryFile(max_size=1 << 20, dir=str(self.settings.tmp_dir)) as spool:
            size = await self.fetcher.fetch(f.url, spool, limit=self.limit, html_ok="html" in f.mimetype)
            image = ""
            if f.mimetype in IMAGE_TYPES and size <= min(IMAGE_MAX, self._images_left) \
                    and isinstance(self.model, TakesImages):
                spool.seek(0)
                token = secrets.token_hex(8)
                # (up to IMAGE_MAX read and encoded: off the event loop)
                data_url = await asyncio.to_thread(lambda: f"data:{f.mimetype};base64,"
                                                   f"{base64.b64encode(spool.read()).decode()}")
                if self.model.add_image(token, data_url):
                    image, self._images_left = IMAGE_MARKER.format(token), self._images_left - size
            spool.seek(0)
            why = await self.sandbox.put_file(FOLDER, name, spool, size, base=self.base)
        if why:
            raise FetchError(why)
        return Placed(name, size, f.mimetype, image)

    async def _say(self, text: str) -> None:
        self._said += 1
        await self.emit(ItemCompleted(ErrorItem(f"task_{self.ref.task_id}_attachment_{self._said}", text)))


async def place_attachments(settings: Settings, store: Store, ref: TaskRef, task: Task, sandbox: Any, model: Any,
                            emit: Emit, fetcher: FileFetcher | None = None, base: str = "/workspace") -> Attachments:
    """The run's attachments, the task's own placed (`.note` lists them for the request); its
    `inbox` is the agent's inbox with reply files placed."""
    files = Attachments(settings, store, ref, sandbox, model, emit, fetcher, base)
    await files.place_task_files(task)
    return files
