"""The `slackbot` command: run, worker, doctor, exec, digest, db, sandbox build, skills check."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from .settings import Settings


class RedactingFormatter(logging.Formatter):
    """Secrets never reach logs, whatever a library prints: the whole formatted record, tracebacks
    included, is scrubbed."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = [s for s in secrets if len(s) >= 6]

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


def setup_logging(settings: Settings, level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", settings.secrets()))
    chosen = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=chosen, handlers=[handler], force=True)
    # Slack's libraries log whole payloads at DEBUG (a secret typed into a modal among them).
    for name in ("slack_sdk", "slack_bolt"):
        logging.getLogger(name).setLevel(max(chosen, logging.INFO))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="slackbot", description="A self-hosted coding agent that lives in Slack.")
    p.add_argument("--log-level", default="info")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the bot (Socket Mode when SLACK_APP_TOKEN is set, else HTTP)")
    run.add_argument("--http", action="store_true", help="force HTTP mode")
    run.add_argument("--port", type=int, default=3000)
    run.add_argument("--no-worker", action="store_true", help="run only the Slack front")
    worker = sub.add_parser("worker", help="a worker process only (claims queued tasks from the database; "
                                           "needs no Slack tokens)")
    worker.add_argument("--port", type=int, default=0, help="unused; reserved")
    sub.add_parser("doctor", help="check tokens, Slack, the model endpoint, Docker, the image, the database")
    ex = sub.add_parser("exec", help="run one task from the terminal, printing its live events")
    ex.add_argument("task")
    ex.add_argument("--json", action="store_true", help="one JSON event per line (codex exec --json shape)")
    ex.add_argument("--repo", default="", help="work on a checkout of this repository URL (a new branch)")
    digest = sub.add_parser("digest", help="post the daily digest now")
    digest.add_argument("--now", action="store_true", help="post it now (the only way from here; the running bot "
                                                          "posts at SLACKBOT_DIGEST_TIME)")
    digest.add_argument("--channel", default="", help="only this channel (its id); default: every channel with "
                                                      "activity in the last 24 hours")
    db = sub.add_parser("db", help="schema migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="migrate the database to this code's schema")
    db_sub.add_parser("current", help="the database's revision and the code's (exit 0 at head, 1 behind, 2 newer)")
    sandbox = sub.add_parser("sandbox", help="sandbox image tools")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    build = sandbox_sub.add_parser("build", help="build the sandbox image")
    build.add_argument("--base", default="debian:bookworm-slim", help="base image (default: a Debian slim image)")
    build.add_argument("--ca-certs", type=Path, default=None, help="folder of extra CA certificates (*.crt)")
    build.add_argument("--tag", default=None, help="image tag (default: SLACKBOT_SANDBOX_IMAGE)")
    skills = sub.add_parser("skills", help="Agent Skills (SKILL.md folders) tools")
    skills_sub = skills.add_subparsers(dest="skills_command", required=True)
    check = skills_sub.add_parser("check", help="check every skill folder in DIR strictly (exit 0 clean, 1 problems)")
    check.add_argument("dir", type=Path, metavar="DIR")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "skills":  # reads only DIR: no settings needed
        from .skills_cli import check
        return check(args.dir)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"Invalid settings: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings, "warning" if args.command == "exec" else args.log_level)
    if args.command == "run":
        return _run(settings, port=args.port, http=args.http, worker=not args.no_worker)
    if args.command == "worker":  # no Slack: the front renders what workers store
        return _run(settings, port=0, http=False, worker=True, front=False)
    if args.command == "doctor":
        from .doctor import doctor
        return asyncio.run(doctor(settings))
    if args.command == "exec":
        from .exec import run_exec
        return asyncio.run(run_exec(settings, args.task, as_json=args.json, repo=args.repo))
    if args.command == "digest":
        from .digest_cli import post_now
        return asyncio.run(post_now(settings, args.channel))
    if args.command == "db":
        return asyncio.run(_db(settings, args.db_command))
    if args.command == "sandbox":
        from .sandbox.build import build_image
        from .sandbox.docker import SandboxError
        try:
            build_image(tag=args.tag or settings.sandbox_image, base=args.base, ca_certs_dir=args.ca_certs)
        except SandboxError as exc:
            print(f"Build failed: {exc}", file=sys.stderr)
            return 1
        return 0
    return 2


async def _db(settings: Settings, action: str) -> int:
    from .store import SchemaState, SchemaTooNew, Store

    def name(found: SchemaState) -> str:
        if found.current is None:
            return "empty"
        return f"{found.current} (first release, never stamped)" if found.unversioned else found.current

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    try:
        if action == "upgrade":
            found = await store.upgrade()
            print(f"Already at {found.head}." if found.at_head else f"Upgraded {name(found)} → {found.head}.")
            return 0
        found = await store.schema()
        print(f"database: {name(found)}\ncode:     {found.head}")
        if not found.known:
            print(SchemaTooNew(found.current or "", found.head), file=sys.stderr)
            return 2
        print("Up to date." if found.at_head
              else "Upgrade needed: `slackbot db upgrade` (run and worker do it on start).")
        return 0 if found.at_head else 1
    except SchemaTooNew as exc:
        print(f"Not upgraded: {exc}", file=sys.stderr)
        return 2
    finally:
        await store.aclose()


def _run(settings: Settings, *, port: int, http: bool, worker: bool, front: bool = True) -> int:
    if front and not settings.slack_bot_token:
        print("SLACK_BOT_TOKEN is not set (a bot token, xoxb-…). See README.md.", file=sys.stderr)
        return 2
    if front and (http or not settings.slack_app_token) and not settings.slack_signing_secret:
        print("HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode).", file=sys.stderr)
        return 2
    from .app import Bot

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with Bot(settings, port=port, http=http, front=front, worker=worker):
            # What starting made lives as long as the process: out of the collector's full passes,
            # which otherwise cost 100-300 ms with every event's ack waiting behind them.
            gc.freeze()
            await stop.wait()

    try:
        asyncio.run(serve())
    except Exception as exc:  # a clear last word instead of a traceback wall
        logging.getLogger("slackbot").exception("the bot stopped")
        print(f"slackbot stopped: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
