"""A thread's results in the host repository with real git: bundles received (and refused), what changed,
AGENTS.md at a commit, scratch repositories, and the real container scripts in the real sandbox image."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from slackbot.protocol import FileStat, Mount, Step
from slackbot.repos import Mirrors, Results, ResultRefused, ensure_scratch, scripts, thread_ref
from slackbot.repos.results import BOT_EMAIL, BOT_NAME, EMPTY_TREE, RESULT_HEAD
from tests.docker_fixtures import chown_sandbox, engine, sandboxes, settings  # noqa: F401
from tests.git_helpers import git, make_remote, result_bundle, runner  # noqa: F401


@pytest.fixture
async def thread(tmp_path: Path, runner):
    """A mirror with thread 7 started at main; yields (results, mirror, base)."""
    remote = make_remote(tmp_path / "remote.git", tmp_path / "upstream")
    found = await Mirrors(tmp_path / "data" / "mirrors", runner).update(url=str(remote), branch=None)
    results = Results(runner, tmp_path / "data" / "tmp")
    await results.start_thread(found.mirror, 7, found.base_sha)
    assert git("rev-parse", thread_ref(7), cwd=found.mirror) == found.base_sha
    return results, found.mirror, found.base_sha


async def test_a_result_on_the_tip_is_taken_into_the_thread_ref(thread, tmp_path: Path):
    results, mirror, base = thread
    made = result_bundle(mirror, base, {"README.md": "hello\nworld\n", "new.txt": "new\n"}, tmp_path / "r.bundle")
    tip = await results.receive(mirror, tmp_path / "r.bundle", thread_id=7, parent=base, message="m")
    assert tip == made == git("rev-parse", thread_ref(7), cwd=mirror)
    assert git("rev-parse", f"{tip}^", cwd=mirror) == base
    assert git("show", f"{thread_ref(7)}:new.txt", cwd=mirror) == "new"
    assert git("for-each-ref", "refs/heads", "--format=%(refname)", cwd=mirror).split() == [
        "refs/heads/main", "refs/heads/release-2"]  # nothing but the thread's ref moved
    assert list((tmp_path / "data" / "tmp").iterdir()) == []  # the throwaway repository is gone
    git("fsck", "--no-dangling", cwd=mirror)


async def test_a_root_commit_is_put_on_the_tip(thread, tmp_path: Path):
    results, mirror, base = thread
    snapshot = result_bundle(mirror, None, {"README.md": "rewritten\n", "x.txt": "x\n"}, tmp_path / "r.bundle",
                             borrow=False)
    tip = await results.receive(mirror, tmp_path / "r.bundle", thread_id=7, parent=base, message="The change")
    assert tip != snapshot and git("rev-parse", f"{tip}^@", cwd=mirror) == base
    assert git("rev-parse", f"{tip}^{{tree}}", cwd=mirror) == git("rev-parse", f"{snapshot}^{{tree}}",
                                                                   cwd=tmp_path / "r.bundle.work")
    assert git("log", "-1", "--format=%an <%ae>|%cn|%B", tip, cwd=mirror) == f"{BOT_NAME} <{BOT_EMAIL}>|{BOT_NAME}|The change"
    assert git("rev-parse", thread_ref(7), cwd=mirror) == tip


async def refused(results: Results, mirror: Path, bundle: Path, parent: str, match: str) -> None:
    before = git("rev-parse", thread_ref(7), cwd=mirror)
    with pytest.raises(ResultRefused, match=match):
        await results.receive(mirror, bundle, thread_id=7, parent=parent, message="m")
    assert git("rev-parse", thread_ref(7), cwd=mirror) == before


async def test_results_not_on_the_tip_are_refused(thread, tmp_path: Path):
    results, mirror, base = thread
    tip = await results.receive(mirror, _bundle(mirror, base, tmp_path, "first"), thread_id=7, parent=base,
                                message="m")
    stale = _bundle(mirror, base, tmp_path, "on-the-old-tip")  # another parent than the thread's tip
    await refused(results, mirror, stale, tip, "does not build on this thread's branch")
    other = _bundle(mirror, git("rev-parse", "refs/heads/release-2", cwd=mirror), tmp_path, "on-release")
    await refused(results, mirror, other, tip, "does not build on this thread's branch")
    # A merge of the tip with another line of history: its parents are not just the tip.
    work = tmp_path / "merge.work"
    git("init", "-q", str(work))
    (work / ".git" / "objects" / "info" / "alternates").write_text(f"{mirror / 'objects'}\n")
    merge = git("commit-tree", f"{tip}^{{tree}}", "-p", tip, "-p", "refs/heads/release-2", "-m", "merge", cwd=mirror)
    git("update-ref", RESULT_HEAD, merge, cwd=work)  # the object lives in the mirror, seen through alternates
    git("bundle", "create", "-q", str(tmp_path / "merge.bundle"), RESULT_HEAD, f"^{tip}", cwd=work)
    await refused(results, mirror, tmp_path / "merge.bundle", tip, "does not build on this thread's branch")
    # A prerequisite the repository lacks: made on history it never had.
    foreign = result_bundle(mirror, None, {"a.txt": "a\n"}, tmp_path / "root.bundle", borrow=False)
    lacking = tmp_path / "lacking.bundle"
    git("commit", "-q", "--allow-empty", "-m", "later", cwd=tmp_path / "root.bundle.work")
    git("update-ref", RESULT_HEAD, "HEAD", cwd=tmp_path / "root.bundle.work")
    git("bundle", "create", "-q", str(lacking), RESULT_HEAD, f"^{foreign}", cwd=tmp_path / "root.bundle.work")
    await refused(results, mirror, lacking, tip, "does not build on this thread's branch")


def _bundle(mirror: Path, parent: str, tmp_path: Path, name: str, **kwargs) -> Path:
    path = tmp_path / f"{name}.bundle"
    result_bundle(mirror, parent, {f"{name}.txt": name}, path, **kwargs)
    return path


async def test_bundles_with_other_refs_or_garbage_are_refused(thread, tmp_path: Path):
    results, mirror, base = thread
    extra = _bundle(mirror, base, tmp_path, "extra", refs=(RESULT_HEAD, "refs/heads/main"))
    await refused(results, mirror, extra, base, "carried refs it should not have")
    renamed = _bundle(mirror, base, tmp_path, "renamed", refs=("refs/heads/main",))
    await refused(results, mirror, renamed, base, "carried refs it should not have")
    tagged = _bundle(mirror, base, tmp_path, "tagged", refs=(RESULT_HEAD, "refs/tags/v1"))
    await refused(results, mirror, tagged, base, "carried refs it should not have")
    garbage = tmp_path / "garbage.bundle"
    garbage.write_bytes(os.urandom(4096))
    await refused(results, mirror, garbage, base, "not a valid bundle")
    header_only = tmp_path / "header.bundle"
    header_only.write_bytes(b"# v2 git bundle\n" + b"1" * 40 + b" " + RESULT_HEAD.encode() + b"\n\nPACK")
    await refused(results, mirror, header_only, base, "was not taken")
    assert git("rev-parse", thread_ref(7), cwd=mirror) == base


@pytest.mark.parametrize("corruption", ["dotgit-tree", "bad-date"])
async def test_objects_that_fail_fsck_are_refused(thread, tmp_path: Path, corruption: str):
    results, mirror, base = thread
    work = tmp_path / "corrupt.work"
    git("init", "-q", str(work))
    (work / ".git" / "objects" / "info" / "alternates").write_text(f"{mirror / 'objects'}\n")
    blob = git("hash-object", "-w", "--stdin", cwd=work, stdin=b"[core]\n\tfsmonitor = touch /tmp/pwned\n")
    if corruption == "dotgit-tree":  # a tree entry named .git: a checkout would write into the repository
        inner = git("mktree", cwd=work, stdin=f"100644 blob {blob}\tconfig\n".encode())
        tree = git("mktree", cwd=work, stdin=f"040000 tree {inner}\t.git\n".encode())
        commit = git("commit-tree", tree, "-p", base, "-m", "x", cwd=work)
    else:
        raw = (f"tree {EMPTY_TREE}\nparent {base}\nauthor A <a@b> 99999999999999999999999 +0000\n"
               f"committer A <a@b> 1 +0000\n\nx\n")
        git("hash-object", "-w", "--stdin", "-t", "tree", cwd=work, stdin=b"")  # the empty tree, for the bundle
        commit = git("hash-object", "-w", "--literally", "-t", "commit", "--stdin", cwd=work, stdin=raw.encode())
    git("update-ref", RESULT_HEAD, commit, cwd=work)
    git("bundle", "create", "-q", str(tmp_path / "bad.bundle"), RESULT_HEAD, f"^{base}", cwd=work)
    await refused(results, mirror, tmp_path / "bad.bundle", base, "failed git's checks")


async def test_changes_counts_and_patch(thread, tmp_path: Path):
    results, mirror, base = thread
    files = {"README.md": "hello\nworld\n", "dir/ü file.txt": "one\ntwo\n", "bin.dat": b"\0\1\2" * 100}
    tip = await results.receive(mirror, _write(mirror, base, files, tmp_path), thread_id=7, parent=base, message="m")
    changes = await results.changes(mirror, base, tip, 1_000_000)
    assert set(changes.files) == {FileStat("README.md", 1, 0, "update"), FileStat("dir/ü file.txt", 2, 0, "add"),
                                  FileStat("bin.dat", 0, 0, "add")}
    assert "+world" in changes.patch and "+one\n+two" in changes.patch and not changes.patch_truncated
    deleted = await results.receive(mirror, _write(mirror, tip, {"README.md": None}, tmp_path), thread_id=7,
                                    parent=tip, message="m")
    assert (await results.changes(mirror, tip, deleted, 1000)).files == (FileStat("README.md", 0, 2, "delete"),)
    cut = await results.changes(mirror, base, tip, 100)
    assert cut.patch_truncated and len(cut.patch.encode()) <= 100 and cut.files == changes.files
    assert (await results.changes(mirror, tip, tip, 100)).files == ()


def _write(mirror: Path, parent: str, files: dict, tmp_path: Path) -> Path:
    path = tmp_path / f"w-{len(list(tmp_path.iterdir()))}.bundle"
    result_bundle(mirror, parent, files, path)
    return path


async def test_instructions_come_from_the_commit(tmp_path: Path, runner):
    results = Results(runner, tmp_path / "tmp")
    repo = tmp_path / "repo"
    git("init", "-q", str(repo))

    def commit(files: dict[str, str], links: dict[str, str] = {}) -> str:  # noqa: B006
        for name in ("AGENTS.md", "AGENTS.override.md"):
            if os.path.lexists(repo / name):
                os.unlink(repo / name)
        for name, text in files.items():
            (repo / name).write_text(text)
        for name, target in links.items():
            os.symlink(target, repo / name)
        git("add", "-A", cwd=repo)
        git("commit", "-q", "--allow-empty", "-m", "x", cwd=repo)
        return git("rev-parse", "HEAD", cwd=repo)

    plain = commit({"AGENTS.md": "Run make test.\n"})
    both = commit({"AGENTS.md": "Run make test.\n", "AGENTS.override.md": "Use tabs.\n"})
    linked = commit({"secret.txt": "do not read\n"}, {"AGENTS.md": "/etc/passwd"})
    linked_rel = commit({"secret.txt": "do not read\n"}, {"AGENTS.md": "secret.txt"})
    big = commit({"AGENTS.md": "x" * 100_000})
    none = commit({})
    (repo / "AGENTS.md").write_text("what the work tree says\n")  # never read: only the commit counts
    assert await results.instructions(repo, plain, 32 * 1024) == "## AGENTS.md\nRun make test."
    assert await results.instructions(repo, both, 32 * 1024) == "## AGENTS.override.md\nUse tabs."
    assert await results.instructions(repo, linked, 32 * 1024) == ""
    assert await results.instructions(repo, linked_rel, 32 * 1024) == ""
    assert await results.instructions(repo, none, 32 * 1024) == ""
    text = await results.instructions(repo, big, 32 * 1024)
    assert text.startswith("## AGENTS.md\nxxx") and text.endswith("[AGENTS.md instructions cut at 32 KiB]")
    assert text.count("x") <= 32 * 1024 + 10


async def test_scratch_repository(tmp_path: Path, runner):
    path, sha = ensure_scratch(tmp_path / "scratch", 9)
    assert path == tmp_path / "scratch" / "thread-9.git" and git("rev-parse", "main", cwd=path) == sha
    assert git("rev-parse", "--is-bare-repository", cwd=path) == "true"
    assert git("rev-parse", f"{sha}^{{tree}}", cwd=path) == EMPTY_TREE
    assert git("log", "--format=%an", "main", cwd=path) == BOT_NAME
    assert git("config", "uploadpack.hideRefs", cwd=path) == "refs/slackbot"
    assert ensure_scratch(tmp_path / "scratch", 9) == (path, sha)
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == [".template.git", "thread-9.git"]
    assert ensure_scratch(tmp_path / "scratch", 10)[1] == sha  # every scratch thread starts from one commit
    results = Results(runner, tmp_path / "tmp")
    await results.start_thread(path, 9, sha)
    tip = await results.receive(path, _write(path, sha, {"a.txt": "a\n"}, tmp_path), thread_id=9, parent=sha,
                                message="m")
    assert git("rev-parse", thread_ref(9), cwd=path) == tip


# ---- the container scripts, for real --------------------------------------------------------

async def _step(sandboxes, name: str, script: tuple, work: Path, **kwargs) -> object:
    argv, env = script
    return await sandboxes.run_step(Step(70, name, argv, kwargs.pop("mounts", (Mount(str(work), "/workspace"),)),
                                         env=tuple(env.items()), timeout_s=120, **kwargs))


async def _edit(sandboxes, work: Path, command: str) -> None:
    done = await _step(sandboxes, "agent", (("bash", "-c", command), {}), work)
    assert done.exit_code == 0, done.output


async def _finish(sandboxes, work: Path, tmp_path: Path, parent: str, name: str) -> tuple[dict, Path]:
    bundle = tmp_path / f"{name}.bundle"
    done = await _step(sandboxes, "finish", scripts.finish(parent=parent, branch="slackbot/t-7", message=name,
                                                           max_file=50 << 20), work,
                       stdout_path=str(bundle), stdout_cap=64 << 20)
    meta = scripts.result_meta(done.output)
    assert done.exit_code == 0 and meta is not None, done.output
    return meta, bundle


@pytest.mark.docker
async def test_clone_and_finish_steps_hand_a_result_the_host_takes(thread, sandboxes, tmp_path: Path):
    results, mirror, base = thread
    work = tmp_path / "workspace"
    work.mkdir()
    chown_sandbox(work)
    cloned = await _step(sandboxes, "clone", scripts.clone(base_sha=base, branch="slackbot/t-7",
                                                           origin="https://example.com/o/r.git"), work,
                         mounts=(Mount(str(mirror), "/mirror", read_only=True), Mount(str(work), "/workspace")))
    assert cloned.exit_code == 0, cloned.output
    assert (work / "README.md").read_text() == "hello\n" and (work / ".git").is_dir()

    await _edit(sandboxes, work, "echo world >> README.md && echo new > new.txt && truncate -s 100G huge.bin")
    meta, bundle = await _finish(sandboxes, work, tmp_path, base, "first")
    assert meta["left_out"] == [["huge.bin", 100 << 30]] and meta["changed"] and meta["had_history"]
    assert bundle.stat().st_size < 1 << 20
    tip = await results.receive(mirror, bundle, thread_id=7, parent=base, message="first")
    assert tip == meta["commit"]
    changes = await results.changes(mirror, base, tip, 100_000)
    assert {(f.path, f.kind) for f in changes.files} == {("README.md", "update"), ("new.txt", "add")}
    assert "huge.bin" not in git("ls-tree", "-r", "--name-only", tip, cwd=mirror)

    # A follow-up in the same workspace: the workspace's branch followed the first result.
    await _edit(sandboxes, work, "test \"$(git rev-parse HEAD)\" = " + tip + " && echo two > two.txt")
    meta, bundle = await _finish(sandboxes, work, tmp_path, tip, "second")
    second = await results.receive(mirror, bundle, thread_id=7, parent=tip, message="second")
    assert git("rev-parse", f"{second}^", cwd=mirror) == tip
    assert [f.path for f in (await results.changes(mirror, tip, second, 100_000)).files] == ["two.txt"]

    # .git replaced by a file: a snapshot without history, which the host puts on the tip.
    await _edit(sandboxes, work, "rm -rf .git && printf 'gitdir: /etc\\n' > .git && echo three > three.txt")
    meta, bundle = await _finish(sandboxes, work, tmp_path, second, "third")
    assert not meta["had_history"] and meta["left_out"] == [["huge.bin", 100 << 30]]
    third = await results.receive(mirror, bundle, thread_id=7, parent=second, message="third")
    assert git("rev-parse", f"{third}^", cwd=mirror) == second
    assert [f.path for f in (await results.changes(mirror, second, third, 100_000)).files] == ["three.txt"]
    assert git("rev-parse", thread_ref(7), cwd=mirror) == third
