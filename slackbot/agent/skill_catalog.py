"""The skills a task can use: sources merged by precedence, and the catalogue text the model sees.

Only names and descriptions go into the prompt; a skill's body is loaded when the model asks for it,
so the catalogue stays small and bounded however many skills exist.
"""

from __future__ import annotations

from dataclasses import dataclass

from .skills import SOURCES, Problem, Skill

HEADER = "Skills you can load with the load_skill tool, or that the request names as $name:"
MIN_DESCRIPTION = 80  # descriptions are never shortened below this; skills are left out instead


@dataclass(frozen=True)
class Catalog:
    skills: tuple[Skill, ...] = ()  # by name
    shadowed: tuple[tuple[Skill, Skill], ...] = ()  # (winner, loser): same name in a lower source
    problems: tuple[Problem, ...] = ()

    def get(self, name: str) -> Skill | None:
        return next((s for s in self.skills if s.name == name), None)


def merge(*sources: tuple[list[Skill], list[Problem]]) -> Catalog:
    """One catalogue from `load_dir` results given highest precedence first (repository, admin, built-in):
    a name's first skill wins, later ones are listed as shadowed."""
    winners: dict[str, Skill] = {}
    shadowed: list[tuple[Skill, Skill]] = []
    problems: list[Problem] = []
    for skills, found in sources:
        problems += found
        for skill in skills:
            if skill.name in winners:
                shadowed.append((winners[skill.name], skill))
            else:
                winners[skill.name] = skill
    return Catalog(tuple(sorted(winners.values(), key=lambda s: s.name)), tuple(shadowed), tuple(problems))


def catalog_text(catalog: Catalog, limit: int = 8000) -> tuple[str, list[str]]:
    """The header and one "- name: description" line per skill, at most `limit` characters ("" when no
    skill fits), and warnings. Over the limit, long descriptions are cut to one even length (not below
    MIN_DESCRIPTION); if that is not enough, skills are left out: lower sources first, then by name from
    the end."""
    descriptions = {s.name: " ".join(s.description.split()) for s in catalog.skills}  # one line each
    kept = list(catalog.skills)
    warnings: list[str] = []

    def size(cap: int) -> int:
        return len(HEADER) + sum(5 + len(s.name) + min(len(descriptions[s.name]), cap) for s in kept)  # "\n- : "

    for skill in sorted(kept, key=lambda s: (SOURCES.index(s.source), s.name), reverse=True):
        if size(MIN_DESCRIPTION) <= limit:
            break
        kept.remove(skill)
        warnings.append(f"skill `{skill.name}` ({skill.source}) left out of the catalogue: it is over {limit} "
                        f"characters even with descriptions cut to {MIN_DESCRIPTION}")
    if not kept:
        return "", warnings
    longest = max(len(descriptions[s.name]) for s in kept)
    cap = longest
    if size(longest) > limit:  # the longest cut that fits; size(MIN_DESCRIPTION) fits by now
        low, high = MIN_DESCRIPTION, longest - 1
        while low < high:
            mid = (low + high + 1) // 2
            low, high = (mid, high) if size(mid) <= limit else (low, mid - 1)
        cap = low
        warnings.insert(0, f"skill descriptions cut to {cap} characters to keep the catalogue within {limit}")
    lines = [f"- {s.name}: {_cut(descriptions[s.name], cap)}" for s in kept]
    return "\n".join([HEADER, *lines]), warnings


def _cut(text: str, cap: int) -> str:
    return text if len(text) <= cap else text[:cap - 1].rstrip() + "…"

