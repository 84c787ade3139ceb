"""Bare mirrors of repositories on the host: cloned once, fetched afterwards, pushed from.

A mirror is host-only: no sandbox ever writes it. Containers clone from it through a read-only
mount; results come back as bundles (see results.py) into `refs/slackbot/threads/<id>`, a namespace
the mirror's `--prune` fetch leaves alone and its upload-pack hides. Credentials are used only
here, through environment-scoped git config: nothing is written to a config file or a remote URL.
A non-admin's ad-hoc URL gets a mirror of its own (under `adhoc/`), fetched without credentials,
so it can never read an admin's mirror of the same URL.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .errors import GitFailed, RepoError, basic_auth, display_url, redact, short_stderr
from .git_env import GitRunner, config_env, run_git
from .urls import Pin, check_public_https, refuse_data_dir

# ext:: and fd:: would run commands; everything else a linked URL may use.
ALLOWED_PROTOCOLS = "file:git:http:https:ssh"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
HIDDEN = "refs/slackbot"


@dataclass(frozen=True)
class Resolved:
    mirror: Path
    base_branch: str
    base_sha: str


class Mirrors:
    def __init__(self, root: Path, runner: GitRunner, *, github_token: str = "",
                 token_hosts: tuple[str, ...] = ("github.com",), data_dir: Path | None = None) -> None:
        """`token_hosts`: hosts (host[:port]) whose HTTPS remotes get `github_token`."""
        self.root = root
        self.runner = runner
        self.data_dir = data_dir or root.parent
        self._token = github_token
        self._token_hosts = token_hosts
        self._locks: dict[str, asyncio.Lock] = {}

    def path_for(self, url: str, trusted: bool = True) -> Path:
        key = _key(url)
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        name = key.lower().rsplit("/", 1)[-1].removesuffix(".git")
        slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")
        return (self.root if trusted else self.root / "adhoc") / f"{slug[:40] or 'repo'}-{digest}.git"

    async def check(self, *, url: str, branch: str | None = None, trusted: bool = True) -> str:
        """Updates the mirror; returns the base branch (`branch`, else the default one) or raises RepoError."""
        return (await self.update(url=url, branch=branch, trusted=trusted)).base_branch

    async def update(self, *, url: str, branch: str | None, trusted: bool = True) -> Resolved:
        """Fetches (or first clones) the mirror and resolves the base branch to a commit."""
        if branch:
            _check_branch(branch)
        refuse_data_dir(url, self.data_dir)
        pin = None if trusted else await self.runner.run(check_public_https, url)
        async with self.lock(url, trusted):
            mirror = await self.runner.run(self._update, url, trusted, pin)
            name, sha = await self.runner.run(self._resolve, mirror, url, branch, trusted, pin)
        return Resolved(mirror, name, sha)

    async def refusal(self, url: str, trusted: bool) -> str:
        """Why `url` may not be used this way ("" when it may), without fetching anything."""
        try:
            refuse_data_dir(url, self.data_dir)
            if not trusted:
                await self.runner.run(check_public_https, url)
        except RepoError as exc:
            return str(exc)
        except ValueError:  # urllib on a malformed port or IPv6 literal
            return "That is not a valid repository URL."
        return ""

    async def push(self, *, url: str, ref: str, branch: str) -> None:
        """Pushes the mirror's `ref` to `refs/heads/<branch>` of `url`; RepoError with git's reason."""
        _check_branch(branch)
        async with self.lock(url, True):
            await self.runner.run(self._push, url, ref, branch)

    def lock(self, url: str, trusted: bool = True) -> asyncio.Lock:
        return self._locks.setdefault(f"{trusted}:{_key(url)}", asyncio.Lock())

    # --- blocking parts (on the runner's executor) ---

    def _update(self, url: str, trusted: bool, pin: Pin | None) -> Path:
        """Fetches into the mirror, or clones it the first time (into a temporary name, so a failed clone
        leaves nothing half-made behind)."""
        path = self.path_for(url, trusted)
        if (path / "HEAD").is_file():
            # "origin" (the same URL) so the mirror's refspecs apply; --prune drops deleted branches
            # and never touches refs/slackbot/*, which no refspec names.
            self._git(["fetch", "--prune", "--quiet", "origin"], url, trusted, pin, cwd=path)
            run_git(["config", "uploadpack.hideRefs", HIDDEN], cwd=path)  # mirrors of the first release
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            # --bare, not --mirror: a mirror would also take refs/pull/* from GitHub.
            self._git(["clone", "--bare", "--quiet", "--", url, str(tmp)], url, trusted, pin)
            for refspec in ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"):
                run_git(["config", "--add", "remote.origin.fetch", refspec], cwd=tmp)
            # Clones for sandboxes never see the threads' results; a detached gc could delete packs
            # while a clone reads them.
            run_git(["config", "uploadpack.hideRefs", HIDDEN], cwd=tmp)
            run_git(["config", "gc.autoDetach", "false"], cwd=tmp)
            tmp.rename(path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return path

    def _resolve(self, mirror: Path, url: str, branch: str | None, trusted: bool, pin: Pin | None) -> tuple[str, str]:
        if branch:
            sha = rev(mirror, f"refs/heads/{branch}")
            if not sha:
                raise RepoError(f"The branch `{branch}` does not exist in {display_url(url)}.")
            return branch, sha
        head = _default_ref(mirror)
        if not rev(mirror, head):
            # The remote's default branch may have changed since the clone: ask it again.
            out = self._git(["ls-remote", "--symref", "--", url, "HEAD"], url, trusted, pin, cwd=mirror)
            found = re.search(r"^ref: (refs/heads/\S+)\tHEAD", out, re.MULTILINE)
            if found:
                head = found.group(1)
                run_git(["symbolic-ref", "HEAD", head], cwd=mirror)
        sha = rev(mirror, head)
        if not sha:
            if not run_git(["for-each-ref", "--count=1", "refs/heads"], cwd=mirror).strip():
                raise RepoError(f"The repository {display_url(url)} has no branches yet.")
            raise RepoError(f"I could not tell the default branch of {display_url(url)}: name one with branch=NAME.")
        return head.removeprefix("refs/heads/"), sha

    def _push(self, url: str, ref: str, branch: str) -> None:
        mirror = self.path_for(url)
        if not rev(mirror, ref):
            raise RepoError(f"There is nothing to push for `{branch}` yet.")
        try:
            self._git(["push", "--porcelain", "--", url, f"{ref}:refs/heads/{branch}"], url, True, None,
                      cwd=mirror, words=False)
        except GitFailed as exc:
            raise RepoError(self._push_failure(exc, url)) from exc

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

    def _git(self, args: list[str], url: str, trusted: bool, pin: Pin | None, *, cwd: Path | None = None,
             words: bool = True) -> str:
        """A git command that talks to `url`; failures become RepoError (unless words=False)."""
        try:
            return run_git(args, cwd=cwd, env=self._net_env(url, trusted, pin), timeout_s=self.runner.timeout_s)
        except GitFailed as exc:
            if not words:
                raise
            reason = short_stderr(exc.stderr, self._secrets())
            raise RepoError(f"I could not reach the repository {display_url(url)}: {reason}") from exc

    def _net_env(self, url: str, trusted: bool, pin: Pin | None) -> dict[str, str]:
        if not trusted:
            # No credential of the bot's: no helper, no token, no ssh; only the checked address.
            # No proxy either: a proxy resolves the name itself, and the checked address would not hold.
            pairs = [("credential.helper", ""), ("core.askPass", "/bin/false"), ("http.proxy", ""),
                     *(pin.config() if pin else [])]
            no_proxy = dict.fromkeys(("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                                      "ALL_PROXY"), "")
            return {**config_env(pairs), **no_proxy, "GIT_ALLOW_PROTOCOL": "https", "GIT_ASKPASS": "/bin/false",
                    "SSH_ASKPASS": "/bin/false"}
        pairs = []
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


def rev(repo: Path, ref: str) -> str:
    """The commit `ref` names in a host-only repository, or ""."""
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
