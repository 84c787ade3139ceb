"""Agent Skills (the open SKILL.md format that Codex and others share): reading and checking one
skill folder, and loading a folder of them.

A skill is a folder holding SKILL.md: YAML front matter between `---` lines, then Markdown
instructions. A repository's skills are untrusted, so reading is bounded (file and front matter
sizes, no YAML aliases) and never goes through a symbolic link. The catalogue the model sees is
built in skill_catalog.py.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Source = Literal["repository", "admin", "built-in"]
SOURCES: tuple[Source, ...] = ("repository", "admin", "built-in")  # highest precedence first

MAX_SKILL_MD = 256 * 1024
MAX_FRONT_MATTER = 16 * 1024
MAX_SKILLS = 200  # per source folder: reading stays bounded whatever a repository holds
MAX_NAME, MAX_DESCRIPTION, MAX_COMPATIBILITY = 64, 1024, 500
FIELDS = ("name", "description", "license", "compatibility", "metadata", "allowed-tools")
SUBFOLDERS = ("scripts", "references", "assets")

# safe_load's rules in libyaml's C scanner where present (PyYAML's wheels ship it): the pure-Python
# scanner takes seconds on 16 KiB of nested brackets, libyaml refuses nesting past 1000 at once.
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
# `$name` not inside a word (`US$5`, `a$b`) and not continued by one (`$foo_bar`, `$foo-Bar`);
# underscores may wrap it, as Slack's italics do (`_$code-review_`).
MENTION = re.compile(r"(?<![^\W_])(?<!\$)\$(" + NAME.pattern + r")(?![^\W_]|-|_[^\W_])")


class SkillError(ValueError):
    """A skill that cannot be loaded; the message says why, in words for its author."""


@dataclass(frozen=True)
class Skill:
    name: str
    description: str
    body: str
    source: Source
    path: Path  # the skill's folder
    license: str = ""
    compatibility: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    allowed_tools: tuple[str, ...] = ()  # shown, not enforced
    folders: tuple[str, ...] = ()  # which of scripts/, references/, assets/ exist
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Problem:
    """A skill folder that could not be loaded, and why."""
    path: str
    source: str
    reason: str


def parse_skill(folder: Path, source: Source, *, strict: bool) -> Skill:
    """The skill in `folder`. Strict mode refuses unknown front-matter fields; lenient mode ignores them
    with a warning. Raises SkillError."""
    data, folders, warnings = _read(folder)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff").replace("\r\n", "\n")
    except UnicodeDecodeError:
        raise SkillError("SKILL.md is not UTF-8 text") from None
    front, body = _split(text)
    fields = _front_matter(front)
    unknown = [str(k) for k in fields if k not in FIELDS]
    if unknown and strict:
        raise SkillError(f"unknown field{'s' if len(unknown) > 1 else ''} {_names(unknown)} "
                         f"(known: {', '.join(FIELDS)})")
    warnings += [f"unknown field `{_show(k)}` ignored" for k in unknown]
    name = _name(fields.get("name"), folder.name)
    description = _text(fields, "description", MAX_DESCRIPTION, required=True)
    body = body.strip()
    if not body:
        warnings.append("SKILL.md has no instructions after the front matter")
    return Skill(name=name, description=description, body=body, source=source, path=folder,
                 license=_text(fields, "license"),
                 compatibility=_text(fields, "compatibility", MAX_COMPATIBILITY),
                 metadata=_metadata(fields.get("metadata")), allowed_tools=_tools(fields.get("allowed-tools")),
                 folders=folders, warnings=tuple(warnings))


def scan(root: Path, source: Source, *, strict: bool) -> tuple[list[Skill], list[Problem]]:
    """Every skill in `root`'s immediate subfolders, and the folders that failed. Hidden entries and plain
    files are skipped; a subfolder without SKILL.md is skipped, or a problem when `strict`."""
    if not root.is_dir():
        return [], []
    skills: list[Skill] = []
    problems: list[Problem] = []
    entries = sorted(e for e in root.iterdir() if not e.name.startswith("."))
    for entry in entries:
        if len(skills) + len(problems) >= MAX_SKILLS:
            problems.append(Problem(str(root), source, f"more than {MAX_SKILLS} skill folders; the rest are ignored"))
            break
        if entry.is_symlink():  # a link is refused whatever it points at: nothing is read through one
            problems.append(Problem(str(entry), source, "the skill folder is a symbolic link; skills are never "
                                                        "read through links"))
            continue
        if not entry.is_dir():
            continue
        if not strict and not os.path.lexists(entry / "SKILL.md"):
            continue
        try:
            skills.append(parse_skill(entry, source, strict=strict))
        except SkillError as exc:
            problems.append(Problem(str(entry), source, str(exc)))
        except Exception as exc:  # one odd folder never costs the others (or a task)
            problems.append(Problem(str(entry), source, f"could not be read ({exc.__class__.__name__})"))
    return skills, problems


def load_dir(root: Path, source: Source) -> tuple[list[Skill], list[Problem]]:
    """Lenient loading, as tasks do: broken skills become problems, a missing `root` is no skills."""
    return scan(root, source, strict=False)


def check_dir(root: Path, source: Source = "repository") -> list[Problem]:
    """Strict checking, for authors (`slackbot skills check DIR`)."""
    return scan(root, source, strict=True)[1]


def mentioned(text: str) -> list[str]:
    """The `$skill-name` tokens in a message, each once, in order; callers keep those in the catalogue."""
    names = [m.group(1) for m in MENTION.finditer(text) if len(m.group(1)) <= MAX_NAME]
    return list(dict.fromkeys(names))


# ---- reading ------------------------------------------------------------------------------------

def _read(folder: Path) -> tuple[bytes, tuple[str, ...], list[str]]:
    """SKILL.md's bytes, the subfolders present and warnings. Opened through the folder's descriptor with
    O_NOFOLLOW, so a link swapped in after the checks is refused too."""
    if folder.is_symlink():
        raise SkillError("the skill folder is a symbolic link; skills are never read through links")
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SkillError("the skill folder is a symbolic link; skills are never read through links") from None
        raise SkillError(f"cannot open the skill folder: {exc.strerror}") from None
    try:
        try:  # O_NONBLOCK: a FIFO named SKILL.md must not hang the reader
            fd = os.open("SKILL.md", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
        except FileNotFoundError:
            raise SkillError("no SKILL.md in the folder") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SkillError("SKILL.md is a symbolic link; skills are never read through links") from None
            raise SkillError(f"cannot open SKILL.md: {exc.strerror}") from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # (a folder, a FIFO: checked before reading)
            os.close(fd)
            raise SkillError("SKILL.md is not a regular file")
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_SKILL_MD + 1) if info.st_size <= MAX_SKILL_MD else b""
        if info.st_size > MAX_SKILL_MD or len(data) > MAX_SKILL_MD:
            raise SkillError(f"SKILL.md is larger than {MAX_SKILL_MD // 1024} KiB; move long material to "
                             "references/")
        folders, warnings = [], []
        for name in SUBFOLDERS:
            try:
                mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(mode):
                warnings.append(f"{name}/ is a symbolic link; ignored")
            elif stat.S_ISDIR(mode):
                folders.append(name)
        return data, tuple(folders), warnings
    finally:
        os.close(dir_fd)


def _split(text: str) -> tuple[str, str]:
    """(front matter, body)."""
    lines = text.split("\n")
    if lines[0].rstrip() != "---":
        raise SkillError("SKILL.md has no front matter: it must start with a `---` line, then `name:` and "
                         "`description:`, then `---`")
    for i in range(1, len(lines)):
        if lines[i].rstrip() == "---":
            return "\n".join(lines[1:i]), "\n".join(lines[i + 1:])
    raise SkillError("the front matter has no closing `---` line")


def _front_matter(front: str) -> dict[Any, Any]:
    if len(front.encode()) > MAX_FRONT_MATTER:
        raise SkillError(f"the front matter is larger than {MAX_FRONT_MATTER // 1024} KiB")
    try:
        # Aliases are refused outright: a few bytes of them expand into huge values once shown.
        if any(isinstance(e, yaml.AliasEvent) for e in yaml.parse(front, Loader=SafeLoader)):
            raise SkillError("the front matter uses a YAML alias (`*name`); write the value out")
        fields = yaml.load(front, Loader=SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (SKILL.md line {mark.line + 2})" if mark is not None else ""  # +2: the `---` line, 1-based
        raise SkillError(f"the front matter is not valid YAML{where}: "
                         f"{_show(str(getattr(exc, 'problem', None) or exc), 160)}") from None
    except RecursionError:
        raise SkillError("the front matter is nested too deeply") from None
    except (ValueError, OverflowError, TypeError) as exc:  # YAML's own conversions: `2024-02-30`, huge ints
        raise SkillError(f"the front matter has a value YAML cannot read: {_show(str(exc), 120)}") from None
    if not isinstance(fields, dict):
        raise SkillError(f"the front matter must be a mapping of fields (`name: …`), not {_kind(fields)}")
    return fields


# ---- fields -------------------------------------------------------------------------------------

def _name(value: object, folder: str) -> str:
    if value is None:
        raise SkillError("name is missing")
    if not isinstance(value, str):
        raise SkillError(f"name must be a string, not {_kind(value)}")
    if not value:
        raise SkillError("name is empty")
    if len(value) > MAX_NAME:
        raise SkillError(f"name is {len(value)} characters; at most {MAX_NAME}")
    if not re.fullmatch(r"[a-z0-9-]+", value):
        raise SkillError(f"name `{_show(value)}` must be lowercase letters, digits and hyphens")
    if value.startswith("-") or value.endswith("-"):
        raise SkillError(f"name `{value}` must not start or end with a hyphen")
    if "--" in value:
        raise SkillError(f"name `{value}` must not contain two hyphens in a row")
    if value != folder:
        raise SkillError(f"name `{value}` does not match its folder `{_show(folder)}`")
    return value


def _text(fields: dict[Any, Any], key: str, limit: int = 0, *, required: bool = False) -> str:
    value = fields.get(key)
    if value is None:
        if required:
            raise SkillError(f"{key} is missing")
        return ""
    if not isinstance(value, str):
        raise SkillError(f"{key} must be a string, not {_kind(value)}")
    value = value.strip()
    if required and not value:
        raise SkillError(f"{key} is empty")
    if limit and len(value) > limit:
        raise SkillError(f"{key} is {len(value)} characters; at most {limit}")
    return value


def _metadata(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SkillError(f"metadata must be a mapping of strings, not {_kind(value)}")
    for k, v in value.items():
        if not isinstance(k, str):
            raise SkillError(f"metadata keys must be strings, not {_kind(k)}")
        if not isinstance(v, str):
            raise SkillError(f"metadata `{_show(k)}` must be a string, not {_kind(v)} (quote values like \"1.0\")")
    return dict(value)


def _tools(value: object) -> tuple[str, ...]:
    """`allowed-tools`: a space-separated string or a list of strings."""
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list) and all(isinstance(t, str) and t.strip() for t in value):
        return tuple(t.strip() for t in value)
    raise SkillError("allowed-tools must be a space-separated string or a list of non-empty strings")


def _kind(value: object) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (str, list, dict)):
        return {str: "a string", list: "a list"}.get(type(value), "a mapping")
    return f"a {type(value).__name__}"  # dates, timestamps


def _show(value: str, width: int = 40) -> str:
    """An untrusted value quoted in a reason: one line, bounded."""
    value = " ".join(value.split())
    return value if len(value) <= width else value[:width] + "…"


def _names(names: list[str]) -> str:
    return ", ".join(f"`{_show(n)}`" for n in names[:10]) + (" …" if len(names) > 10 else "")
