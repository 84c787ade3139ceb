"""FakeGitHub: the few GitHub REST endpoints slackbot uses, served over real HTTP on 127.0.0.1.

State: repositories (`add_repo`), their branches, and the pull requests opened. Endpoints:
GET /repos/{o}/{r}, POST /repos/{o}/{r}/pulls, GET /repos/{o}/{r}/pulls?head=owner:branch&state=open.
Answers like GitHub does: 401 "Bad credentials", 404 "Not Found", 403 for a read-only repository,
422 "Validation Failed" with `errors` for a duplicate head or an unknown branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aiohttp import web

from tests.fakes.serve import serve


class GitHubRequest(NamedTuple):
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeRepo:
    full_name: str
    default_branch: str = "main"
    branches: set[str] = field(default_factory=set)
    writable: bool = True
    check_heads: bool = False  # only when the test named the branches


class FakeGitHub:
    def __init__(self, token: str | None = None) -> None:
        """`token`: the only token accepted; None accepts any non-empty bearer token."""
        self.token = token
        self.repos: dict[str, FakeRepo] = {}
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[GitHubRequest] = []
        self._faults: list[tuple[int, str, dict[str, Any]]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_repo(self, full_name: str, *, default_branch: str = "main", branches: tuple[str, ...] | None = None,
                 writable: bool = True) -> FakeRepo:
        """A repository. With `branches`, PR heads and bases must be among them (plus the default branch);
        without, any head is accepted and the base must be the default branch."""
        repo = FakeRepo(full_name, default_branch, {default_branch, *(branches or ())}, writable,
                        check_heads=branches is not None)
        self.repos[full_name] = repo
        return repo

    def add_branch(self, full_name: str, branch: str) -> None:
        self.repos[full_name].branches.add(branch)

    def fail_next(self, status: int, message: str, **extra: Any) -> None:
        """The next request (whatever it is) gets this status and `{"message": message, **extra}`."""
        self._faults.append((status, message, extra))

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/repos/{owner}/{name}", self._get_repo)
        app.router.add_post("/repos/{owner}/{name}/pulls", self._create_pull)
        app.router.add_get("/repos/{owner}/{name}/pulls", self._list_pulls)
        self._runner, self.port = await serve(app)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.requests.append(GitHubRequest(request.method, request.path, dict(request.query),
                                           dict(request.headers), body))
        if self._faults:
            status, message, extra = self._faults.pop(0)
            return _error(status, message, **extra)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token or (self.token is not None and token != self.token):
            return _error(401, "Bad credentials")
        if request.headers.get("X-GitHub-Api-Version") != "2022-11-28" or \
                request.headers.get("Accept") != "application/vnd.github+json":
            return _error(400, "Missing GitHub API headers")
        return await handler(request)

    def _repo(self, request: web.Request) -> FakeRepo | None:
        return self.repos.get(f"{request.match_info['owner']}/{request.match_info['name']}")

    async def _get_repo(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return _error(404, "Not Found")
        owner = repo.full_name.split("/")[0]
        return web.json_response({"full_name": repo.full_name, "default_branch": repo.default_branch,
                                  "owner": {"login": owner}, "html_url": self._html(repo.full_name)})

    async def _create_pull(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return _error(404, "Not Found")
        if not repo.writable:
            return _error(403, "Resource not accessible by personal access token")
        body = await request.json()
        head, base = body.get("head", ""), body.get("base", "")
        if not body.get("title"):
            return _invalid("title", "missing_field")
        owner = repo.full_name.split("/")[0]
        branch = head.split(":", 1)[1] if ":" in head else head
        if base not in repo.branches:
            return _invalid("base", "invalid")
        if repo.check_heads and branch not in repo.branches:
            return _invalid("head", "invalid")
        if any(p["repo"] == repo.full_name and p["head"] == branch and p["state"] == "open" for p in self.pulls):
            return _error(422, "Validation Failed", errors=[{
                "resource": "PullRequest", "code": "custom",
                "message": f"A pull request already exists for {owner}:{branch}."}])
        number = len(self.pulls) + 1
        pull = {"number": number, "repo": repo.full_name, "head": branch, "base": base, "title": body["title"],
                "body": body.get("body", ""), "state": "open",
                "html_url": f"{self._html(repo.full_name)}/pull/{number}"}
        self.pulls.append(pull)
        return web.json_response({**pull, "head": {"ref": branch}, "base": {"ref": base}}, status=201)

    async def _list_pulls(self, request: web.Request) -> web.Response:
        repo = self._repo(request)
        if repo is None:
            return _error(404, "Not Found")
        head = request.query.get("head", "")
        owner = repo.full_name.split("/")[0]
        state = request.query.get("state", "open")
        found = [p for p in self.pulls if p["repo"] == repo.full_name
                 and (not head or f"{owner}:{p['head']}" == head) and (state == "all" or p["state"] == state)]
        return web.json_response([{**p, "head": {"ref": p["head"]}, "base": {"ref": p["base"]}} for p in found])

    def _html(self, full_name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{full_name}"


def _error(status: int, message: str, **extra: Any) -> web.Response:
    body = {"message": message, "documentation_url": "https://docs.github.com/rest", **extra}
    return web.json_response(body, status=status)


def _invalid(field_name: str, code: str) -> web.Response:
    return _error(422, "Validation Failed", errors=[{"resource": "PullRequest", "field": field_name, "code": code}])
