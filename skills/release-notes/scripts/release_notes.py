#!/usr/bin/env python3
"""Draft release notes in Markdown from the git log between two refs.

Commits are grouped by their Conventional Commit type (`feat(api): add paging` -> Features, with the
scope in bold: `**api:** add paging`); a `!` after the type or a `BREAKING CHANGE:` footer puts the
commit under "Breaking changes", listed first. Subjects that follow no known type go under "Other
changes". Each entry ends with its short hash; the authors are listed under "Contributors".

FROM defaults to the latest tag reachable from TO that is not on TO itself (so at a freshly tagged
release the notes cover the release), or to the root commit when there is no such tag. TO defaults to
HEAD. Merge commits are left out unless --merges is given. Python 3 stdlib and git only.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass

SECTIONS = {"feat": "Features", "fix": "Fixes", "perf": "Performance", "docs": "Documentation",
            "refactor": "Refactoring", "test": "Tests", "tests": "Tests", "build": "Build", "ci": "Build",
            "chore": "Other changes", "style": "Other changes", "revert": "Other changes"}
ORDER = ["Breaking changes", "Features", "Fixes", "Performance", "Documentation", "Refactoring", "Tests", "Build",
         "Other changes"]
SUBJECT = re.compile(r"(?P<type>[A-Za-z]+)(?:\((?P<scope>[^()]*)\))?(?P<bang>!)?:\s+(?P<text>\S.*)")
BREAKING = re.compile(r"^BREAKING[ -]CHANGE:\s*(?P<text>.*(?:\n(?!\s*\n).+)*)", re.MULTILINE)
FIELD, RECORD = "\x1f", "\x1e"


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    section: str
    scope: str
    text: str
    short: str
    author: str
    breaking_note: str = ""

    def markdown(self) -> str:
        line = f"- {f'**{self.scope}:** ' if self.scope else ''}{self.text} ({self.short})"
        return line + (f"\n  - {self.breaking_note}" if self.breaking_note else "")


def git(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    done = subprocess.run(["git", *args], capture_output=True)
    if done.returncode not in ok:
        raise GitError(f"git {' '.join(args)} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def commit(ref: str) -> str:
    return git("rev-parse", "--verify", "--quiet", ref + "^{commit}", ok=(0, 1)).strip()


def previous_tag(to: str) -> str | None:
    """The latest tag reachable from `to`, skipping tags on `to` itself; None when there is none."""
    target = commit(to)
    for ref in (to, to + "^"):
        if not commit(ref):
            return None
        tag = git("describe", "--tags", "--abbrev=0", ref, ok=(0, 128)).strip()
        if not tag:
            return None
        if commit(tag) != target:
            return tag
    return None


def parse(subject: str, body: str, short: str, author: str) -> Entry:
    m = SUBJECT.fullmatch(subject.strip())
    kind = m["type"].lower() if m else ""
    note = BREAKING.search(body)
    breaking_note = " ".join(note["text"].split()) if note else ""
    if m and kind in SECTIONS:
        section = "Breaking changes" if m["bang"] or note else SECTIONS[kind]
        return Entry(section, (m["scope"] or "").strip(), m["text"].strip(), short, author, breaking_note)
    return Entry("Breaking changes" if note else "Other changes", "", subject.strip(), short, author, breaking_note)


def read_log(start: str | None, end: str, merges: bool) -> list[Entry]:
    spec = f"{start}..{end}" if start else end
    out = git("log", "--no-color", "--encoding=UTF-8", *([] if merges else ["--no-merges"]),
              f"--format=%h{FIELD}%aN{FIELD}%s{FIELD}%b{RECORD}", spec, "--")
    entries = []
    for record in out.split(RECORD):
        if record.strip():
            short, author, subject, body = record.lstrip("\n").split(FIELD, 3)
            entries.append(parse(subject, body, short, author))
    return entries


def render(entries: list[Entry], title: str) -> str:
    out = [f"# {title}", ""]
    for section in ORDER:
        items = [e.markdown() for e in entries if e.section == section]
        if items:
            out += [f"## {section}", "", *items, ""]
    authors = sorted(dict.fromkeys(e.author for e in entries), key=str.casefold)
    out += ["## Contributors", "", *(f"- {a}" for a in authors)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="release_notes.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("start", nargs="?", metavar="FROM", help="the previous release (excluded); "
                        "default: the latest tag before TO, else the root commit (included)")
    parser.add_argument("end", nargs="?", default="HEAD", metavar="TO", help="the release (default: HEAD)")
    parser.add_argument("--merges", action="store_true", help="include merge commits")
    parser.add_argument("--title", help="the heading (default: `Changes in FROM..TO`)")
    args = parser.parse_args(argv)
    try:
        for ref in filter(None, (args.start, args.end)):
            if not commit(ref):
                raise GitError(f"{ref!r} is not a commit, branch or tag here")
        start = args.start or previous_tag(args.end)
        entries = read_log(start, args.end, args.merges)
    except GitError as exc:
        print(f"release_notes.py: {exc}", file=sys.stderr)
        return 2
    span = f"{start}..{args.end}" if start else f"{args.end} (since the first commit)"
    if not entries:
        print(f"No commits in {span}{'' if args.merges else ' (merge commits left out)'}.")
        return 0
    print(render(entries, args.title or f"Changes in {span}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
