"""A thread's work in the host's own repositories: its ref, incoming results, what changed, and what is
read from its base (AGENTS.md).

A result arrives as a bundle a trusted container step wrote. It is data from a hostile place, so
it is unbundled into a throwaway host-only repository (borrowing the host repository's objects),
must carry exactly one ref whose commit sits directly on the thread's tip, and is then fetched into
the host repository with `transfer.fsckObjects` (a fetch straight from a bundle file skips fsck).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..protocol import FileKind, FileStat
from .errors import GitFailed, RepoError
from .git_env import GitRunner, run_git, run_git_capped
from .mirror import HIDDEN, rev

RESULT_HEAD = "refs/heads/slackbot-result"  # the one ref a result bundle may carry
BOT_NAME = "slackbot"
BOT_EMAIL = "slackbot@users.noreply.localhost"
BOT_ENV = {"GIT_AUTHOR_NAME": BOT_NAME, "GIT_AUTHOR_EMAIL": BOT_EMAIL,
           "GIT_COMMITTER_NAME": BOT_NAME, "GIT_COMMITTER_EMAIL": BOT_EMAIL}
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
# A scratch thread's start: the same empty commit for every thread, so a checkout can make it again.
SCRATCH_MESSAGE = "Start of the agent thread"
SCRATCH_DATE = "946684800 +0000"  # 2000-01-01


class ResultRefused(RepoError):
    """A task's result was not taken; the message says why, for the thread."""


@dataclass(frozen=True)
class Changes:
    files: tuple[FileStat, ...]
    patch: str
    patch_truncated: bool = False


def thread_ref(thread_id: int) -> str:
    return f"{HIDDEN}/threads/{thread_id}"


class Results:
    def __init__(self, runner: GitRunner, tmp_dir: Path, *, expanded_cap: int = 4 << 30) -> None:
        """`expanded_cap`: the most a result may add once unpacked (a small bundle can hold a lot)."""
        self.runner = runner
        self.tmp_dir = tmp_dir
        self.expanded_cap = expanded_cap

    async def start_thread(self, repo: Path, thread_id: int, base_sha: str) -> None:
        """The thread's ref starts at its base, which also keeps the base from being pruned."""
        await self.runner.run(lambda: run_git(["update-ref", thread_ref(thread_id), base_sha], cwd=repo))

    async def receive(self, repo: Path, bundle: Path, *, thread_id: int, parent: str, message: str) -> str:
        """Takes a result bundle into `repo` as the thread's new tip; returns it or raises ResultRefused."""
        return await self.runner.run(self._receive, repo, bundle, thread_id, parent, message)

    async def changes(self, repo: Path, old: str, new: str, patch_cap: int) -> Changes:
        return await self.runner.run(self._changes, repo, old, new, patch_cap)

    async def base_bundle(self, repo: Path, ref: str, exclude: list[str], dest: Path) -> bool:
        """Writes a bundle of `ref` without what `exclude` reaches; False when there is nothing new."""
        return await self.runner.run(self._base_bundle, repo, ref, exclude, dest)

    async def instructions(self, repo: Path, sha: str, cap: int) -> str:
        """AGENTS.md (AGENTS.override.md wins) at the root of `sha`, as given to the model."""
        return await self.runner.run(self._instructions, repo, sha, cap)

    # ---- blocking parts ------------------------------------------------------------------

    def _receive(self, repo: Path, bundle: Path, thread_id: int, parent: str, message: str) -> str:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        incoming = self.tmp_dir / f"incoming-{uuid.uuid4().hex[:12]}.git"
        run_git(["init", "-q", "--bare", str(incoming)])
        # Ours, pointing at ours: the prerequisite (the thread's tip) is found without copying.
        (incoming / "objects" / "info" / "alternates").write_text(f"{repo / 'objects'}\n")
        try:
            return self._take(repo, incoming, bundle, thread_id, parent, message)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)

    def _take(self, repo: Path, incoming: Path, bundle: Path, thread_id: int, parent: str, message: str) -> str:
        try:
            heads = run_git(["bundle", "list-heads", str(bundle)], cwd=incoming)
        except GitFailed:
            raise ResultRefused("The task's result could not be read (it is not a valid bundle).") from None
        refs = [line.split(" ", 1)[-1] for line in heads.splitlines() if line.strip()]
        if refs != [RESULT_HEAD]:
            raise ResultRefused("The task's result carried refs it should not have, so it was not taken.")
        try:
            run_git(["bundle", "verify", str(bundle)], cwd=incoming)  # (-q would hide why it failed)
            run_git(["fetch", "-q", "--no-tags", "--no-write-fetch-head", str(bundle),
                     f"{RESULT_HEAD}:{RESULT_HEAD}"], cwd=incoming)
        except GitFailed as exc:
            if "prerequisite" in exc.stderr:
                raise ResultRefused("The task's result does not build on this thread's branch, so it was not "
                                    "taken.") from None
            raise ResultRefused("The task's result could not be read (a damaged bundle), so it was not "
                                "taken.") from None
        commit = rev(incoming, RESULT_HEAD)
        parents = run_git(["rev-list", "--parents", "-n", "1", commit], cwd=incoming).split()[1:]
        if not parents:
            # A snapshot made without the thread's history (its .git was gone): put it on the tip.
            tree = run_git(["rev-parse", "--verify", f"{commit}^{{tree}}"], cwd=incoming).strip()
            commit = run_git(["commit-tree", tree, "-p", parent, "-m", message], cwd=incoming, env=BOT_ENV).strip()
            run_git(["update-ref", RESULT_HEAD, commit], cwd=incoming)
        elif parents != [parent]:
            raise ResultRefused("The task's result does not build on this thread's branch, so it was not taken.")
        self._carried_in_full(incoming, commit, parent)
        try:
            run_git(["-c", "transfer.fsckObjects=true", "-c", "fetch.fsckObjects=true", "fetch", "-q", "--no-tags",
                     "--no-write-fetch-head", str(incoming), f"+{RESULT_HEAD}:{thread_ref(thread_id)}"],
                    cwd=repo, timeout_s=self.runner.timeout_s)
        except GitFailed as exc:
            reason = exc.stderr.strip().splitlines()[-1][:200] if exc.stderr.strip() else "fsck failed"
            raise ResultRefused(f"The task's result failed git's checks, so it was not taken ({reason}).") from None
        return commit

    def _carried_in_full(self, incoming: Path, commit: str, parent: str) -> None:
        """Every object the result adds to the thread must have come in the bundle. Borrowing the host
        repository's objects lets the bundle leave out what the thread already has, but a hostile
        workspace can forge its copy of an old tree so the bundle also leaves out, and the result
        names, an object only another thread holds (its work would be read back and pushed)."""
        listed = run_git(["rev-list", "--objects", commit, f"^{parent}"], cwd=incoming, timeout_s=self.runner.timeout_s)
        names = [line.split(" ", 1)[0] for line in listed.splitlines() if line.strip()]
        alternates = incoming / "objects" / "info" / "alternates"
        aside = alternates.with_name("alternates.off")
        alternates.rename(aside)
        try:
            checked = run_git(["cat-file", "--batch-check=%(objectname) %(objectsize)"], cwd=incoming,
                              stdin_text="\n".join(names) + "\n").splitlines()
        finally:
            aside.rename(alternates)
        sizes = [line.split() for line in checked]
        # Same words for a missing object as for a damaged bundle: no answer tells a guess was right.
        if any(len(parts) != 2 or not parts[1].isdigit() for parts in sizes):
            raise ResultRefused("The task's result could not be read (a damaged bundle), so it was not taken.")
        total = sum(int(parts[1]) for parts in sizes)
        if total > self.expanded_cap:
            raise ResultRefused(f"The task's changes come to {total >> 20} MiB once unpacked, more than "
                                f"{self.expanded_cap >> 20} MiB, so they were not taken.")

    def _changes(self, repo: Path, old: str, new: str, patch_cap: int) -> Changes:
        if old == new:
            return Changes((), "")
        plain = ["--no-ext-diff", "--no-textconv", "--no-color", "--no-renames"]
        kinds: dict[str, FileKind] = {"A": "add", "D": "delete"}
        listed = run_git(["diff", *plain, "--name-status", "-z", old, new], cwd=repo).split("\0")
        status = {name: kinds.get(code[:1], "update") for code, name in zip(listed[0::2], listed[1::2]) if name}
        stats = []
        for entry in run_git(["diff", *plain, "--numstat", "-z", old, new], cwd=repo).split("\0"):
            if entry.count("\t") < 2:
                continue
            added, removed, name = entry.split("\t", 2)
            stats.append(FileStat(name, int(added) if added.isdigit() else 0,
                                  int(removed) if removed.isdigit() else 0, status.get(name, "update")))
        patch, truncated = run_git_capped(["diff", *plain, old, new], cwd=repo, cap=patch_cap)
        return Changes(tuple(stats), patch, truncated)

    def _base_bundle(self, repo: Path, ref: str, exclude: list[str], dest: Path) -> bool:
        if rev(repo, ref) in exclude:
            return False
        try:
            run_git(["bundle", "create", "-q", str(dest), ref, "--not", *[e for e in exclude if e]], cwd=repo)
        except GitFailed as exc:
            if "empty bundle" in exc.stderr:
                return False
            raise
        return True

    def _instructions(self, repo: Path, sha: str, cap: int) -> str:
        listed = run_git(["ls-tree", "-z", sha, "--", "AGENTS.override.md", "AGENTS.md"], cwd=repo)
        entries = {}
        for entry in listed.split("\0"):
            meta, _, path = entry.partition("\t")
            parts = meta.split()
            # A regular file only: a symlink's blob is its target, a gitlink no file at all.
            if len(parts) == 3 and parts[0] in ("100644", "100755") and parts[1] == "blob":
                entries[path] = parts[2]
        name = next((n for n in ("AGENTS.override.md", "AGENTS.md") if n in entries), "")
        if not name:
            return ""
        data, truncated = run_git_capped(["cat-file", "blob", entries[name]], cwd=repo, cap=cap)
        text = f"## {name}\n{data.strip()}"
        return text + (f"\n[AGENTS.md instructions cut at {cap // 1024} KiB]" if truncated else "")


def ensure_scratch(root: Path, thread_id: int) -> tuple[Path, str]:
    """A host-only bare repository standing in for a mirror in a thread with no repository: one empty
    commit on `main` to start from (blocking). Every thread's start is the same commit, so a new one is
    a copy of a template made once (no git run on a task's start)."""
    path = root / f"thread-{thread_id}.git"
    if (path / "HEAD").is_file():
        return path, rev(path, "refs/heads/main")
    template = _scratch_template(root)
    tmp = path.with_name(f"{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(template, tmp, symlinks=True)
        tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path, (template / "refs" / "heads" / "main").read_text().strip()


def scratch_start(root: Path) -> str:
    """The commit every new scratch thread starts from (blocking)."""
    return (_scratch_template(root) / "refs" / "heads" / "main").read_text().strip()


def _scratch_template(root: Path) -> Path:
    template = root / ".template.git"
    if (template / "refs" / "heads" / "main").is_file():
        return template
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".template.git.tmp-{uuid.uuid4().hex[:8]}"
    try:
        run_git(["init", "-q", "--bare", "--template=", "--initial-branch=main", str(tmp)])  # (no sample hooks)
        run_git(["hash-object", "-t", "tree", "-w", "--stdin"], cwd=tmp, stdin_path="/dev/null")
        sha = run_git(["commit-tree", EMPTY_TREE, "-m", SCRATCH_MESSAGE], cwd=tmp,
                      env={**BOT_ENV, "GIT_AUTHOR_DATE": SCRATCH_DATE, "GIT_COMMITTER_DATE": SCRATCH_DATE}).strip()
        run_git(["update-ref", "refs/heads/main", sha], cwd=tmp)  # (a loose ref: read back as a file)
        run_git(["config", "uploadpack.hideRefs", HIDDEN], cwd=tmp)
        try:
            tmp.rename(template)
        except OSError:  # another process made it first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return template
