"""`slackbot doctor`: checks each part the bot needs and says what to fix."""

from __future__ import annotations

import asyncio
import sys
from typing import Awaitable, Callable

import aiohttp

from .app import instance_label
from .sandbox import DockerSandboxes
from .sandbox.build import recipe_hash
from .settings import Settings
from .store import Store

Check = Callable[[], Awaitable[str]]


async def doctor(settings: Settings, out=sys.stdout) -> int:
    failures = 0
    for name, check in _checks(settings):
        try:
            async with asyncio.timeout(30):
                detail = await check()
            print(f"✓ {name}: {detail}", file=out)
        except TimeoutError:
            failures += 1
            print(f"✗ {name}: no answer within 30 s", file=out)
        except Exception as exc:
            failures += 1
            print(f"✗ {name}: {exc or exc.__class__.__name__}", file=out)
    print("All good." if not failures else f"{failures} problem(s) found.", file=out)
    return 1 if failures else 0


def _checks(s: Settings) -> list[tuple[str, Check]]:
    async def tokens() -> str:
        problems = []
        if not s.slack_bot_token.startswith("xoxb-"):
            problems.append("SLACK_BOT_TOKEN must be a bot token (xoxb-…)")
        if s.slack_app_token and not s.slack_app_token.startswith("xapp-"):
            problems.append("SLACK_APP_TOKEN must be an app-level token (xapp-…)")
        if not s.slack_app_token and not s.slack_signing_secret:
            problems.append("HTTP mode needs SLACK_SIGNING_SECRET (or set SLACK_APP_TOKEN for Socket Mode)")
        if problems:
            raise RuntimeError("; ".join(problems))
        return "Socket Mode" if s.slack_app_token else "HTTP mode"

    async def slack() -> str:
        from .slack.app import web_client
        client = web_client(s)
        auth = await client.auth_test()
        detail = f"{s.slack_api_url} as {auth.get('user')} in team {auth.get('team')}"
        if s.slack_app_token:
            resp = await client.apps_connections_open(app_token=s.slack_app_token)
            if not resp.get("url"):
                raise RuntimeError("apps.connections.open gave no URL: check SLACK_APP_TOKEN")
            detail += "; Socket Mode ok"
        return detail

    async def model() -> str:
        base = (s.openai_base_url or "https://api.openai.com/v1").rstrip("/")
        headers = {"Authorization": f"Bearer {s.openai_api_key}"} if s.openai_api_key else {}
        timeout = aiohttp.ClientTimeout(total=15)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as http:
                async with http.get(f"{base}/models", headers=headers) as resp:
                    if resp.status in (401, 403):
                        raise RuntimeError(f"{base} refused the key ({resp.status}): check OPENAI_API_KEY")
                    if resp.status >= 500:
                        raise RuntimeError(f"{base} answered {resp.status}")
        except aiohttp.ClientError as exc:
            raise RuntimeError(f"{base} is unreachable ({exc}): check OPENAI_BASE_URL") from exc
        return f"{base} reachable; model {s.model} via the {s.model_api} API"

    async def docker() -> str:
        sandboxes = DockerSandboxes(s, instance=instance_label(s))
        try:
            await sandboxes.ping()
            if not await sandboxes.image_exists():
                raise RuntimeError(f"Docker is up, but the image {s.sandbox_image} is missing: "
                                   "run `slackbot sandbox build`")
            if await sandboxes.image_recipe() != recipe_hash():
                raise RuntimeError(f"the image {s.sandbox_image} was built from another version's recipe: "
                                   "run `slackbot sandbox build` again")
            return f"engine reachable; image {s.sandbox_image} present and current"
        finally:
            await sandboxes.aclose()

    async def database() -> str:
        s.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store(s.db_url)
        try:
            found = await store.upgrade()
            await store.ping()
        finally:
            await store.aclose()
        moved = f"upgraded from {found.current or 'empty'} to" if not found.at_head else "at"
        return f"{s.db_url.split('@')[-1]}, schema {moved} {found.head}"

    return [("tokens", tokens), ("Slack", slack), ("model endpoint", model), ("Docker", docker),
            ("database", database)]
