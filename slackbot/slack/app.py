"""The Bolt app and the Web API client, built from settings."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler, AsyncRateLimitErrorRetryHandler, AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from ..settings import Settings
from .deps import Deps
from .listeners import register

log = logging.getLogger(__name__)


def web_client(settings: Settings) -> AsyncWebClient:
    """slack_sdk retries only connection errors by default; 429s (Retry-After) and 5xx too, here."""
    return AsyncWebClient(
        token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=30,
        retry_handlers=[AsyncConnectionErrorRetryHandler(max_retry_count=3),
                        AsyncRateLimitErrorRetryHandler(max_retry_count=10),
                        AsyncServerErrorRetryHandler(max_retry_count=2)])


def bolt_app(deps: Deps, *, socket_mode: bool) -> AsyncApp:
    app = AsyncApp(
        client=deps.client,
        signing_secret=deps.settings.slack_signing_secret or "unused-in-socket-mode",
        request_verification_enabled=not socket_mode,
        process_before_response=False,
    )

    @app.error
    async def on_error(error: Exception, body: dict) -> None:
        log.exception("listener failed on %s", (body or {}).get("type"), exc_info=error)

    register(app, deps)
    return app
