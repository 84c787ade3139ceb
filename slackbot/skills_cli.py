"""`slackbot skills check DIR`: every skill folder in DIR checked strictly, as an author would before
committing. Exit 0 when clean, 1 when a skill has a problem, 2 when DIR is not a folder."""

from __future__ import annotations

import sys
from pathlib import Path

from .agent.skills import scan


def check(root: Path) -> int:
    if not root.is_dir():
        print(f"{root} is not a folder", file=sys.stderr)
        return 2
    skills, problems = scan(root, "repository", strict=True)
    for problem in problems:
        print(f"{problem.path}: {problem.reason}")
    for skill in skills:  # warnings do not fail the check, but an author wants to see them
        for warning in skill.warnings:
            print(f"{skill.path}: warning: {warning}")
    if problems:
        return 1
    print(f"{len(skills)} skill{'' if len(skills) == 1 else 's'} OK")
    return 0
