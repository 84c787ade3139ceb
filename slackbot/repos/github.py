"""A small GitHub REST client: the default branch of a repository and opening pull requests."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import aiohttp

from .errors import RepoError, redact

API_VERSION = "2022-11-28"
_REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


class GitHubError(RepoError):
    """GitHub refused or failed a request; the message says why in plain words."""

    def __init__(self, message: str, *, status: int = 0, existing_url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.existing_url = existing_url  # set when a pull request for the branch is already open


class GitHub:
    def __init__(self, api_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GitHub:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def default_branch(self, repo: str) -> str:
        data = await self._request("GET", f"/repos/{_check(repo)}", repo=repo, action="read")
        return str(data["default_branch"])

    async def create_pull_request(self, repo: str, *, head: str, base: str, title: str, body: str) -> str:
        """Opens a pull request from `head` into `base`; returns its html_url."""
        payload = {"head": head, "base": base, "title": title, "body": body}
        try:
            data = await self._request("POST", f"/repos/{_check(repo)}/pulls", repo=repo,
                                       action="open pull requests", json=payload)
        except GitHubError as exc:
            if exc.status == 422 and "already exists" in str(exc):
                url = await self.find_pull_request(repo, head)
                where = f": {url}" if url else "."
                raise GitHubError(f"A pull request for `{head}` is already open{where}", status=422,
                                  existing_url=url) from None
            raise
        return str(data["html_url"])

    async def find_pull_request(self, repo: str, head: str) -> str:
        """The html_url of the open pull request from `head` (a branch of `repo` itself), or ""."""
        owner = _check(repo).split("/")[0]
        data = await self._request("GET", f"/repos/{repo}/pulls", repo=repo, action="read pull requests",
                                   params={"head": f"{owner}:{head}", "state": "open"})
        return str(data[0]["html_url"]) if isinstance(data, list) and data else ""

    async def _request(self, method: str, path: str, *, repo: str, action: str, **kwargs: Any) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "slackbot",
            })
        try:
            async with self._session.request(method, self.api_url + path, **kwargs) as resp:
                data = _json(await resp.text())
                if resp.status < 300:
                    return data
                message = _explain(resp.status, resp.headers, data if isinstance(data, dict) else {}, repo, action)
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = redact(str(exc) or exc.__class__.__name__, (self._token,))
            raise GitHubError(f"I could not reach GitHub at {self.api_url}: {reason}") from None
        raise GitHubError(redact(message, (self._token,)), status=resp.status)


def _explain(status: int, headers: Any, data: dict[str, Any], repo: str, action: str) -> str:
    said = str(data.get("message") or "").strip()
    details = [str(e.get("message") or f"{e.get('field', '')} {e.get('code', '')}".strip())
               for e in data.get("errors") or [] if isinstance(e, dict)]
    details = [d for d in details if d]
    if status == 401:
        return "The GitHub token was refused (check GITHUB_TOKEN)."
    if status in (403, 429) and (headers.get("X-RateLimit-Remaining") == "0" or "rate limit" in said.lower()):
        reset = headers.get("X-RateLimit-Reset", "")
        when = f" after {time.strftime('%H:%M UTC', time.gmtime(int(reset)))}" if reset.isdigit() else " later"
        return f"GitHub's rate limit for the token is used up; try again{when}."
    if status == 403:
        return f"The GitHub token has no permission to {action} in {repo}" + (f": {said}" if said else ".")
    if status == 404:
        return f"The GitHub repository {repo} was not found or the token cannot see it."
    if status == 422:
        return "GitHub refused the pull request: " + ("; ".join(details) or said or "validation failed")
    return f"GitHub answered {status}" + (f": {said}" if said else ".")


def _json(text: str) -> Any:
    try:
        return json.loads(text) if text.strip() else None
    except ValueError:  # an HTML error page from a proxy
        return None


def _check(repo: str) -> str:
    if not _REPO.match(repo):
        raise GitHubError(f"`{repo}` is not a GitHub repository name (expected owner/name).")
    return repo
