"""Bare mirrors of linked repositories on the host, checkouts made from them, and pushes back.

A mirror is cloned once and fetched afterwards, so a second thread on the same repository only pays for what
changed. Checkouts are copies (`clone --local --no-hardlinks`): the sandbox gets a self-contained `.git` with no
path back to the host and no inode shared with the mirror, which it could otherwise chmod and rewrite.
Credentials are used only here, on the host, through environment-scoped git config: nothing is written to a
config file, a remote URL or the checkout.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shlex
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import GitFailed, RepoError, basic_auth, display_url, redact, short_stderr
from .git_env import BASE_CONFIG, HARDENED_CONFIG, GitRunner, config_env, run_git
from .workspace import BOT_EMAIL, BOT_NAME

# ext:: and fd:: would run commands; everything else a linked URL may use.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Checkout:
    base_branch: str
    base_sha: str
    branch: str


class Mirrors:
    def __init__(self, root: Path, runner: GitRunner, *, github_token: str = "",
                 token_hosts: tuple[str, ...] = ("github.com",)) -> None:
        """`token_hosts`: hosts (host[:port]) whose HTTPS remotes get `github_token`."""
        self.root = root
        self.runner = runner
        self._token = github_token
        self._token_hosts = token_hosts
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, url: str) -> Path:
        key = _key(url)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        name = key.lower().rsplit("/", 1)[-1].removesuffix(".git")
        slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
        return self.root / f"{slug[:40] or 'repo'}-{digest}.git"

    async def check(self, *, url: str, branch: str | None = None) -> str:
        """Updates the mirror; returns the base branch (`branch`, else the default one) or raises RepoError."""
        async with self._lock(url):
            mirror = await self.runner.run(self._update, url)
            name, _ = await self.runner.run(self._resolve, mirror, url, branch)
            return name

    async def prepare(self, *, url: str, branch: str | None, dest: Path, new_branch: str) -> Checkout:
        """The thread's checkout at `dest` on `new_branch`, made from the base branch; reused if already there."""
        found = await self.existing(dest)
        if found is not None:
            return found
        _check_branch(new_branch)
        async with self._lock(url):
            mirror = await self.runner.run(self._update, url)
            base, sha = await self.runner.run(self._resolve, mirror, url, branch)
            await self.runner.run(self._checkout, mirror, url, base, sha, dest, new_branch)
        return Checkout(base, sha, new_branch)

    async def existing(self, dest: Path) -> Checkout | None:
        """What a checkout made earlier (a follow-up task in the same thread) is on; None if there is none."""
        return await self.runner.run(_read_checkout, dest)

    async def push(self, *, path: Path, url: str, branch: str) -> None:
        """Pushes `branch` of the checkout at `path` to `url`; RepoError with git's reason when refused."""
        _check_branch(branch)
        async with self._lock(url):
            await self.runner.run(self._push, path, url, branch)

    # --- blocking parts (on the runner's executor) ---

    def _update(self, url: str) -> Path:
        """Fetches into the mirror, or clones it the first time (into a temporary name, so a failed clone
        leaves nothing half-made behind)."""
        path = self.path_for(url)
        if (path / "HEAD").is_file():
            # "origin" (the same URL) so the mirror's refspecs apply; --prune drops deleted branches.
            self._git(["fetch", "--prune", "--quiet", "origin"], url, cwd=path)
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            # --bare, not --mirror: a mirror would also take refs/pull/* from GitHub.
            self._git(["clone", "--bare", "--quiet", "--", url, str(tmp)], url)
            for refspec in ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"):
                run_git(["config", "--add", "remote.origin.fetch", refspec], cwd=tmp)
            # A detached gc could delete packs while a checkout copies them.
            run_git(["config", "gc.autoDetach", "false"], cwd=tmp)
            tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def _resolve(self, mirror: Path, url: str, branch: str | None) -> tuple[str, str]:
        if branch:
            _check_branch(branch)
            sha = _rev(mirror, f"refs/heads/{branch}")
            if not sha:
                raise RepoError(f"The branch `{branch}` does not exist in {display_url(url)}.")
            return branch, sha
        head = _default_ref(mirror)
        if not _rev(mirror, head):
            # The remote's default branch may have changed since the clone: ask it again.
            out = self._git(["ls-remote", "--symref", "--", url, "HEAD"], url, cwd=mirror)
            found = re.search(r"^ref: (refs/heads/\S+)\tHEAD", out, re.MULTILINE)
            if found:
                head = found.group(1)
                run_git(["symbolic-ref", "HEAD", head], cwd=mirror)
        sha = _rev(mirror, head)
        if not sha:
            if not run_git(["for-each-ref", "--count=1", "refs/heads"], cwd=mirror).strip():
                raise RepoError(f"The repository {display_url(url)} has no branches yet.")
            raise RepoError(f"I could not tell the default branch of {display_url(url)}: name one with branch=NAME.")
        return head.removeprefix("refs/heads/"), sha

    def _checkout(self, mirror: Path, url: str, base: str, sha: str, dest: Path, new_branch: str) -> None:
        if dest.exists() and any(dest.iterdir()):
            raise RepoError(f"The workspace {dest.name} already has files but is not a git checkout.")
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            run_git(["clone", "--local", "--no-hardlinks", "--quiet", "--branch", base, "--", str(mirror),
                     str(tmp)], timeout_s=self.runner.timeout_s)
            # origin names the real repository (without any user:password), never the mirror's host path.
            run_git(["remote", "set-url", "origin", display_url(url)], cwd=tmp)
            run_git(["checkout", "--quiet", "-b", new_branch, sha], cwd=tmp)
            for key, value in (("user.name", BOT_NAME), ("user.email", BOT_EMAIL),
                               ("slackbot.baseBranch", base), ("slackbot.baseSha", sha)):
                run_git(["config", key, value], cwd=tmp)
            # The clone's reflog says "clone: from <mirror path>": the sandbox has no business knowing it.
            shutil.rmtree(tmp / ".git" / "logs", ignore_errors=True)
            if dest.exists():
                dest.rmdir()
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _push(self, path: Path, url: str, branch: str) -> None:
        dot_git = path / ".git"
        if dot_git.is_symlink() or not dot_git.is_dir():
            raise RepoError(f"There is no checkout to push at {path.name}.")
        mirror = self._update(url) if not (self.path_for(url) / "HEAD").is_file() else self.path_for(url)
        # Git never runs inside the sandbox-written checkout with network or credentials: the mirror (ours)
        # takes the branch from it, then pushes with our config.
        staged = f"refs/slackbot/push/{uuid.uuid4().hex[:12]}"
        env = config_env(BASE_CONFIG + HARDENED_CONFIG)
        try:
            try:
                # A local fetch runs upload-pack without our environment config, so it gets its own
                # safe.directory: the checkout belongs to the sandbox's uid.
                upload_pack = "git -c " + shlex.quote(f"safe.directory={dot_git}") + " upload-pack"
                run_git(["fetch", "--quiet", "--no-tags", "--no-write-fetch-head", f"--upload-pack={upload_pack}",
                         "--", str(dot_git), f"+refs/heads/{branch}:{staged}"], cwd=mirror, env=env,
                        timeout_s=self.runner.timeout_s)
            except GitFailed as exc:
                raise RepoError(f"The branch `{branch}` is not in the workspace: "
                                f"{short_stderr(exc.stderr, self._secrets())}") from exc
            try:
                self._git(["push", "--porcelain", "--", url, f"{staged}:refs/heads/{branch}"], url, cwd=mirror,
                          words=False)
            except GitFailed as exc:
                raise RepoError(self._push_failure(exc, url)) from exc
        finally:
            run_git(["update-ref", "-d", staged], cwd=mirror)

    def _push_failure(self, exc: GitFailed, url: str) -> str:
        # --porcelain: "!\t<src>:<dst>\t[rejected] (non-fast-forward)"; hook output arrives as "remote: …".
        reasons = [line.split("\t")[-1].strip() for line in exc.stdout.splitlines() if line.startswith("!")]
        said = [line[len("remote:"):].strip() for line in exc.stderr.splitlines() if line.startswith("remote:")]
        said = [line for line in said if line and not line.lower().startswith(("error:", "warning:"))]
        if not reasons:
            return f"I could not reach the repository {display_url(url)}: {short_stderr(exc.stderr, self._secrets())}"
        reason = reasons[0].replace("[remote rejected] ", "").replace("[rejected] ", "")
        reason = reason.strip("()") if reason.startswith("(") else reason
        if "non-fast-forward" in reason or "fetch first" in reason:
            reason += " (the branch on the remote has commits this thread does not have)"
        if said:
            reason += " — the remote said: " + " ".join(said)[:400]
        return "The push was rejected: " + redact(reason, self._secrets())

    def _git(self, args: list[str], url: str, *, cwd: Path | None = None, words: bool = True) -> str:
        """A git command that talks to `url`, with credentials; failures become RepoError (unless words=False)."""
        try:
            return run_git(args, cwd=cwd, env=self._net_env(url), timeout_s=self.runner.timeout_s)
        except GitFailed as exc:
            if not words:
                raise
            reason = short_stderr(exc.stderr, self._secrets())
            raise RepoError(f"I could not reach the repository {display_url(url)}: {reason}") from exc

    def _net_env(self, url: str) -> dict[str, str]:
        pairs = list(BASE_CONFIG)
        parts = urlsplit(url) if "://" in url else None
        if self._token and parts and parts.netloc.rsplit("@", 1)[-1] in self._token_hosts and (
                parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK)):
            # Scoped to the host, so a redirect elsewhere does not carry it.
            host = parts.netloc.rsplit("@", 1)[-1]
            pairs.append((f"http.{parts.scheme}://{host}/.extraheader",
                          f"AUTHORIZATION: basic {basic_auth(self._token)}"))
        return {**config_env(pairs), "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS}

    def _secrets(self) -> tuple[str, ...]:
        return (self._token,) if self._token else ()

    def _lock(self, url: str) -> asyncio.Lock:
        return self._locks.setdefault(_key(url), asyncio.Lock())


def branch_name(prefix: str, text: str, task_id: int) -> str:
    """`<prefix><slug>-<task id>`: a few lowercase words of the request, always a valid branch name."""
    text = re.sub(r"<[^>]*>", " ", text)  # Slack mentions and links
    text = re.sub(r"\b(repo|branch|model)=\S+", " ", text)  # mention options
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    slug = ""
    for word in re.findall(r"[a-z0-9]+", ascii_text):
        candidate = f"{slug}-{word}" if slug else word[:30]
        if len(candidate) > 30:
            break
        slug = candidate
    name = f"{prefix}{slug or 'task'}-{task_id}"
    return name if valid_branch(name) else f"slackbot/{slug or 'task'}-{task_id}"


def valid_branch(name: str) -> bool:
    """The rules of `git check-ref-format --branch`, without starting git."""
    if not name or name.startswith("-") or name == "@" or name.endswith(("/", ".", ".lock")):
        return False
    if any(bad in name for bad in ("..", "@{", "//")) or re.search(r"[\x00-\x20\x7f~^:?*\[\\]", name):
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in name.split("/"))


def _check_branch(name: str) -> None:
    if not valid_branch(name):
        raise RepoError(f"`{name}` is not a valid branch name.")


def _key(url: str) -> str:
    return url.strip().rstrip("/")


def _rev(repo: Path, ref: str) -> str:
    try:
        return run_git(["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"],
                       cwd=repo).strip()
    except GitFailed:
        return ""


def _default_ref(mirror: Path) -> str:
    try:
        return run_git(["symbolic-ref", "--quiet", "HEAD"], cwd=mirror).strip()
    except GitFailed:
        return ""


def _read_checkout(dest: Path) -> Checkout | None:
    dot_git = dest / ".git"
    if dot_git.is_symlink() or not dot_git.is_dir():
        return None
    env = {**config_env(BASE_CONFIG + HARDENED_CONFIG), "GIT_DIR": str(dot_git)}

    def read(*args: str) -> str:
        try:
            return run_git(list(args), cwd=dest, env=env, timeout_s=30).strip()
        except GitFailed:
            return ""

    if not read("rev-parse", "--verify", "--quiet", "HEAD"):
        return None
    return Checkout(read("config", "slackbot.baseBranch"), read("config", "slackbot.baseSha"),
                    read("symbolic-ref", "--quiet", "--short", "HEAD"))
