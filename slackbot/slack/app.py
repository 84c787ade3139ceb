"""The Bolt app and the Web API client, built from settings."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler, AsyncRateLimitErrorRetryHandler, AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from ..redact import Redactor
from ..settings import Settings
from .deps import Deps
from .listeners import register

log = logging.getLogger(__name__)


class RedactingWebClient(AsyncWebClient):
    """Every Web API call leaves with its string arguments redacted, file contents too: whatever
    a message quotes (command output, the model, git), no token reaches Slack.

    Listeners use `deps.client` (this one): Bolt's per-request `client` and `say` are plain clients."""

    def __init__(self, *args: Any, redactor: Redactor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.redactor = redactor

    async def api_call(self, api_method: str, *, params: dict | None = None, json: dict | None = None,
                       data: Any = None, **kwargs: Any) -> AsyncSlackResponse:
        return await super().api_call(api_method, params=self._clean(params), json=self._clean(json),
                                      data=self._clean(data), **kwargs)

    async def files_upload_v2(self, **kwargs: Any) -> AsyncSlackResponse:
        # The content goes straight to an upload URL, past api_call.
        kwargs["content"] = self._content(kwargs.get("content"))
        if kwargs.get("file_uploads"):
            kwargs["file_uploads"] = [{**f, "content": self._content(f.get("content"))} for f in kwargs["file_uploads"]]
        return await super().files_upload_v2(**kwargs)

    def _clean(self, args: Any) -> Any:
        if not isinstance(args, dict):
            return args  # None, or already-encoded form data
        # The token argument (apps.connections.open) is a secret we must send, not one we show.
        return {k: v if k == "token" else self.redactor.value(v) for k, v in args.items()}

    def _content(self, content: Any) -> Any:
        if isinstance(content, str):
            return self.redactor.text(content)
        if isinstance(content, bytes):
            return self.redactor.binary(content)
        return content


def web_client(settings: Settings) -> RedactingWebClient:
    """slack_sdk retries only connection errors by default; 429s (Retry-After) and 5xx too, here."""
    return RedactingWebClient(
        token=settings.slack_bot_token, base_url=settings.slack_api_url, timeout=30,
        redactor=Redactor(settings.secrets()),
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
