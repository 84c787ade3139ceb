"""The skills one task can use, and the folder the sandbox reads them from.

Sources, highest first: the task repository's own (only a repository an admin linked, read from the
host repository at the task's base commit), the admin folder (SLACKBOT_SKILLS_DIR), the built-in
`skills/`. The winners are copied into a folder of the data directory (the engine resolves mount
sources on the host, and the data directory is at the same path there) that the agent's container
mounts read-only at /skills.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..agent.skill_catalog import Catalog, catalog_text, merge
from ..agent.skills import Problem, Skill, Source, load_dir, mentioned
from ..protocol import Mount
from ..repos import GitRunner
from ..repos.mirror import rev
from ..repos.skill_files import export_skills
from ..settings import Settings
from ..store import Repository

if TYPE_CHECKING:
    from .task_run import RunContext

log = logging.getLogger(__name__)
TARGET = "/skills"  # where the sandbox sees them
BODY_CAP = 32 * 1024
MAX_NAMED = 3  # skills one request may name  # a skill's instructions as given to the model (as AGENTS.md)
STALE_S = 8 * 86400  # a crashed process's task folders go after this (longer than the longest task)


def builtin_dir() -> Path:
    """The bot's own skills: the source tree's `skills/`, or where the image installed them."""
    source = Path(__file__).resolve().parents[2] / "skills"
    return source if source.is_dir() else Path(sys.prefix) / "share" / "slackbot" / "skills"


@dataclass
class TaskSkills:
    catalog: Catalog = field(default_factory=Catalog)
    folder: Path | None = None  # the host folder mounted at TARGET
    warnings: list[str] = field(default_factory=list)

    @property
    def mounts(self) -> tuple[Mount, ...]:
        return (Mount(str(self.folder), TARGET, read_only=True),) if self.folder and self.catalog.skills else ()

    def prompt_text(self) -> str:
        """The catalogue for the system prompt ("" without skills)."""
        text, _ = catalog_text(self.catalog)
        if not text:
            return ""
        return (f"## Skills\n{text}\nA skill's files (scripts, references) are read-only in {TARGET}/<name>/; "
                "load a skill before you follow it.")

    def body(self, name: str) -> str | None:
        """A skill's instructions as the model gets them, or None when there is no such skill."""
        skill = self.catalog.get(name)
        if skill is None:
            return None
        # (the body cannot close its wrapper or open another one)
        body = skill.body.strip().replace("<skill", "&lt;skill").replace("</skill", "&lt;/skill")
        cut = f"\n[the skill's instructions were cut at {BODY_CAP // 1024} KiB]" if len(body) > BODY_CAP else ""
        return (f"<skill name=\"{skill.name}\" source=\"{skill.source}\" folder=\"{TARGET}/{skill.name}\">\n"
                f"{body[:BODY_CAP]}{cut}\n</skill>")

    def for_request(self, prompt: str) -> str:
        """The bodies of the skills a request names as `$name`, to append to it ("" when none). Only the
        request's own words count, not data it carries (an automation's trigger: a watched message, a
        webhook body), and at most MAX_NAMED skills."""
        parts, unknown = [], []
        for name in mentioned(prompt.split("\n[data: ", 1)[0])[:MAX_NAMED]:
            body = self.body(name)
            if body is None:
                unknown.append(name)
            else:
                parts.append(f"The request names the skill `{name}`; follow it:\n{body}")
        if unknown:
            names = ", ".join(f"${n}" for n in unknown)
            parts.append(f"({names} names no skill available here; say so if it matters.)")
        return "\n\n".join(parts)


def gather(settings: Settings, *, task_id: int, mirror: Path | None, sha: str) -> TaskSkills:
    """Blocking (files and git): run it on the git executor."""
    root = settings.data_dir.resolve() / "skills"
    if mirror is None or not sha:  # the bot's own skills only: the same for every such task
        return _local_skills(settings, root)
    _prune(root)
    folder = root / f"task-{task_id}"
    shutil.rmtree(folder, ignore_errors=True)
    return _made(settings, folder, mirror, sha)


def _made(settings: Settings, folder: Path, mirror: Path | None, sha: str) -> TaskSkills:
    warnings: list[str] = []
    catalog = _catalog(settings, mirror, sha, folder / "repository", warnings)
    mounted = folder / "mounted"
    for skill in catalog.skills:
        shutil.copytree(skill.path, mounted / skill.name, ignore=_links_and_hidden, dirs_exist_ok=True)
    for path in [mounted, *mounted.rglob("*")] if mounted.exists() else []:
        path.chmod(0o755 if path.is_dir() or path.stat().st_mode & 0o111 else 0o644)
    return TaskSkills(catalog, mounted if catalog.skills else None, warnings)


# The admin folder's and the built-in skills, made once per state of their files (a task start
# then copies and parses nothing): folder name -> what it holds.
_LOCAL: dict[Path, TaskSkills] = {}


def _local_skills(settings: Settings, root: Path) -> TaskSkills:
    folder = root / f"local-{_signature(settings)}"
    made = _LOCAL.get(folder)
    if made is None or not (folder / ".ready").is_file():
        _prune(root, keep=folder.name)
        tmp = root / f"{folder.name}.tmp-{secrets.token_hex(4)}"
        try:
            made = _made(settings, tmp, None, "")
            (tmp / ".ready").parent.mkdir(parents=True, exist_ok=True)
            (tmp / ".ready").write_text("")
            try:
                tmp.rename(folder)
            except OSError:  # another process made it first: the same files
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        made = _LOCAL[folder] = TaskSkills(made.catalog, folder / "mounted" if made.folder else None, made.warnings)
    return TaskSkills(made.catalog, made.folder, list(made.warnings))


def _signature(settings: Settings) -> str:
    """What the admin folder's and the built-in skills' files are now (names, sizes, times)."""
    digest = hashlib.sha256()
    for folder in (settings.skills_dir, builtin_dir()):
        if folder is None:
            continue
        for top, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                try:
                    st = os.lstat(os.path.join(top, name))
                except OSError:
                    continue
                digest.update(f"{top}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="replace"))
    return digest.hexdigest()[:16]


def channel_catalog(settings: Settings, *, mirror: Path | None, sha: str) -> Catalog:
    """What `/agent skills` lists (blocking); nothing is kept."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=_tmp(settings)) as tmp:
        return _catalog(settings, mirror, sha, Path(tmp), [])


def release(settings: Settings, task_id: int) -> None:
    shutil.rmtree(settings.data_dir.resolve() / "skills" / f"task-{task_id}", ignore_errors=True)


async def task_skills(git: GitRunner, settings: Settings, *, task_id: int, mirror: Path | None,
                      sha: str) -> TaskSkills:
    return await git.run(lambda: gather(settings, task_id=task_id, mirror=mirror, sha=sha))


def _catalog(settings: Settings, mirror: Path | None, sha: str, dest: Path, warnings: list[str]) -> Catalog:
    """Every source merged: the repository's (exported into `dest`), the admin folder's, the built-in."""
    sources: list[tuple[list[Skill], list[Problem]]] = []
    if mirror is not None and sha:
        try:
            exported = export_skills(mirror, sha, dest)
            warnings += exported.warnings
            sources += [load_dir(f, "repository") for f in exported.folders]
        except Exception as exc:  # the task goes on with the other sources
            log.warning("could not read the skills of %s at %s: %s", mirror, sha[:12], exc)
            warnings.append("the repository's skills could not be read")
    return merge(*sources, *_local(settings, warnings))


def _local(settings: Settings, warnings: list[str]) -> list[tuple[list[Skill], list[Problem]]]:
    """The admin folder's and the built-in skills; a folder that cannot be listed costs only itself."""
    found = []
    folders: list[tuple[Path, Source]] = [(builtin_dir(), "built-in")]
    if settings.skills_dir is not None:
        folders.insert(0, (settings.skills_dir, "admin"))
    for folder, source in folders:
        try:
            found.append(load_dir(folder, source))
        except OSError as exc:
            log.warning("could not read the %s skills in %s: %s", source, folder, exc)
            warnings.append(f"the {source} skills could not be read")
    return found


def _links_and_hidden(folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith(".") or (Path(folder) / n).is_symlink()]


def _prune(root: Path, keep: str | None = None) -> None:
    """Old task folders (a crashed process's); with `keep`, the local folders but that one too."""
    if not root.is_dir():
        return
    local = [p for p in root.glob("local-*") if p.name != keep] if keep is not None else []
    for old in [*root.glob("task-*"), *local]:
        try:
            if time.time() - old.stat().st_mtime > STALE_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            continue


def _tmp(settings: Settings) -> Path:
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    return settings.tmp_dir


async def listing(ctx: RunContext, repo: Repository | None) -> tuple[Catalog, str]:
    """What a task in a channel whose default repository is `repo` could use, and a note on the
    repository's part (read from its mirror as last fetched; nothing is fetched for a listing)."""
    mirror = ctx.repo_ops.mirrors.path_for(repo.url, True) if repo is not None else None

    def read() -> tuple[Catalog, str]:
        sha = ""
        if repo is not None and mirror is not None and (mirror / "HEAD").is_file():
            sha = rev(mirror, f"refs/heads/{repo.branch}" if repo.branch else "HEAD")
        catalog = channel_catalog(ctx.settings, mirror=mirror if sha else None, sha=sha)
        if repo is None:
            return catalog, ""
        if not sha:
            return catalog, f"`{repo.name}`'s own skills show here after its first task."
        return catalog, f"`{repo.name}`'s own skills as of its last fetch."
    return await ctx.git.run(read)
