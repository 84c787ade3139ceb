"""Agent Skills: the SKILL.md format, loading by precedence, the catalogue and `slackbot skills check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from slackbot.agent.skill_catalog import HEADER, MIN_DESCRIPTION, Catalog, catalog_text, merge
from slackbot.agent.skills import Skill, SkillError, Source, check_dir, load_dir, mentioned, parse_skill

REPO_ROOT = Path(__file__).resolve().parent.parent


def write_skill(root: Path, folder: str, front: str | None, body: str = "Do the thing.\n") -> Path:
    """A skill folder; `front` is the YAML between the `---` lines (None: no front matter at all)."""
    path = root / folder
    path.mkdir(parents=True)
    text = body if front is None else f"---\n{front}\n---\n{body}"
    (path / "SKILL.md").write_text(text, encoding="utf-8")
    return path


def good(name: str = "code-review", description: str = "Reviews code.") -> str:
    return f"name: {name}\ndescription: {description}"


# ---- front matter: every rule, both ways -------------------------------------------------------

# (id, folder, front matter, None when valid or a fragment of the reason)
CASES = [
    ("name-1-char", "a", good("a"), None),
    ("name-64-chars", "a" * 64, good("a" * 64), None),
    ("name-digits-hyphens", "v2-tool-3", good("v2-tool-3"), None),
    ("name-empty", "x", "name: ''\ndescription: d", "name is empty"),
    ("name-65-chars", "a" * 65, good("a" * 65), "name is 65 characters; at most 64"),
    ("name-uppercase", "Foo", good("Foo"), "name `Foo` must be lowercase letters, digits and hyphens"),
    ("name-leading-hyphen", "-foo", good("'-foo'"), "must not start or end with a hyphen"),
    ("name-trailing-hyphen", "foo-", good("foo-"), "must not start or end with a hyphen"),
    ("name-double-hyphen", "a--b", good("a--b"), "must not contain two hyphens in a row"),
    ("name-underscore", "a_b", good("a_b"), "must be lowercase letters, digits and hyphens"),
    ("name-space", "a b", good("a b"), "must be lowercase letters, digits and hyphens"),
    ("name-not-folder", "other", good("code-review"), "name `code-review` does not match its folder `other`"),
    ("name-missing", "x", "description: d", "name is missing"),
    ("name-number", "12", "name: 12\ndescription: d", "name must be a string, not a number"),
    ("description-1-char", "code-review", good(description="d"), None),
    ("description-1024", "code-review", good(description="d" * 1024), None),
    ("description-empty", "code-review", good(description="''"), "description is empty"),
    ("description-blank", "code-review", good(description="'   '"), "description is empty"),
    ("description-1025", "code-review", good(description="d" * 1025), "description is 1025 characters; at most 1024"),
    ("description-missing", "code-review", "name: code-review", "description is missing"),
    ("description-list", "code-review", good(description="[a, b]"), "description must be a string, not a list"),
    ("license", "code-review", good() + "\nlicense: Apache-2.0", None),
    ("license-number", "code-review", good() + "\nlicense: 2", "license must be a string"),
    ("compatibility-500", "code-review", good() + "\ncompatibility: " + "c" * 500, None),
    ("compatibility-501", "code-review", good() + "\ncompatibility: " + "c" * 501, "compatibility is 501 characters"),
    ("compatibility-list", "code-review", good() + "\ncompatibility: [a]", "compatibility must be a string"),
    ("metadata", "code-review", good() + "\nmetadata:\n  author: ann\n  version: '1.0'", None),
    ("metadata-number", "code-review", good() + "\nmetadata:\n  version: 1.0", "metadata `version` must be a string"),
    ("metadata-bool", "code-review", good() + "\nmetadata:\n  beta: yes", "not true/false"),
    ("metadata-nested", "code-review", good() + "\nmetadata:\n  a: {b: c}", "not a mapping"),
    ("metadata-key-number", "code-review", good() + "\nmetadata:\n  1: one", "metadata keys must be strings"),
    ("metadata-list", "code-review", good() + "\nmetadata: [a]", "metadata must be a mapping"),
    ("tools-string", "code-review", good() + "\nallowed-tools: Bash(git:*) Read", None),
    ("tools-list", "code-review", good() + "\nallowed-tools: [Bash(git:*), Read]", None),
    ("tools-number", "code-review", good() + "\nallowed-tools: 3", "allowed-tools must be"),
    ("tools-list-of-numbers", "code-review", good() + "\nallowed-tools: [Read, 3]", "allowed-tools must be"),
    ("tools-mapping", "code-review", good() + "\nallowed-tools: {a: b}", "allowed-tools must be"),
    ("not-a-mapping-list", "code-review", "- name\n- description", "not a list"),
    ("not-a-mapping-scalar", "code-review", "just words", "must be a mapping of fields (`name: …`), not a string"),
    ("front-matter-empty", "code-review", "", "must be a mapping of fields (`name: …`), not empty"),
    ("bad-yaml", "code-review", "name: code-review\ndescription: [unclosed", "not valid YAML"),
    ("bad-yaml-line", "code-review", "name: a: b", "not valid YAML (SKILL.md line 2)"),
    ("python-tag", "code-review", good() + "\nx: !!python/object/apply:os.system ['true']", "not valid YAML"),
    ("alias", "code-review", "name: &n code-review\ndescription: *n", "uses a YAML alias"),
    ("alias-bomb", "code-review", "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n" + good(), "uses a YAML alias"),
    ("front-matter-16k", "code-review", good() + "\nlicense: " + "l" * (16 * 1024), "larger than 16 KiB"),
    ("deep-nesting", "code-review", good() + "\nlicense: " + "[" * 5000 + "]" * 5000, "front matter"),
]


@pytest.mark.parametrize("folder,front,error", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_front_matter_rules(tmp_path, folder, front, error):
    path = write_skill(tmp_path, folder, front)
    if error is None:
        skill = parse_skill(path, "repository", strict=True)
        assert skill.name == folder and skill.source == "repository" and skill.path == path
        assert skill.warnings == ()
    else:
        with pytest.raises(SkillError) as exc:
            parse_skill(path, "repository", strict=True)
        assert error in str(exc.value)


def test_a_full_skill_is_read_field_by_field(tmp_path):
    front = ("name: code-review\ndescription: >\n  Reviews a change\n  for bugs.\nlicense: MIT\n"
             "compatibility: needs git\nmetadata:\n  author: ann\nallowed-tools: Bash(git:*) Read")
    path = write_skill(tmp_path, "code-review", front, body="\n# Review\n\nRead the diff.\n\n")
    (path / "scripts").mkdir()
    (path / "assets").mkdir()
    skill = parse_skill(path, "admin", strict=True)
    assert skill == Skill(name="code-review", description="Reviews a change for bugs.",
                          body="# Review\n\nRead the diff.", source="admin", path=path, license="MIT",
                          compatibility="needs git", metadata={"author": "ann"},
                          allowed_tools=("Bash(git:*)", "Read"), folders=("scripts", "assets"))


def test_allowed_tools_as_a_list_is_a_tuple(tmp_path):
    path = write_skill(tmp_path, "code-review", good() + "\nallowed-tools:\n  - Bash(git:*)\n  - Read")
    assert parse_skill(path, "built-in", strict=True).allowed_tools == ("Bash(git:*)", "Read")


def test_unknown_field_is_an_error_when_strict_and_a_warning_when_lenient(tmp_path):
    path = write_skill(tmp_path, "code-review", good() + "\nversion: 2\nauthor: ann")
    with pytest.raises(SkillError, match="unknown fields `version`, `author`"):
        parse_skill(path, "repository", strict=True)
    skill = parse_skill(path, "repository", strict=False)
    assert skill.warnings == ("unknown field `version` ignored", "unknown field `author` ignored")


def test_empty_body_is_allowed_with_a_warning(tmp_path):
    skill = parse_skill(write_skill(tmp_path, "code-review", good(), body="\n  \n"), "repository", strict=True)
    assert skill.body == ""
    assert skill.warnings == ("SKILL.md has no instructions after the front matter",)


@pytest.mark.parametrize("text,error", [
    ("# Just markdown\n", "has no front matter"),
    ("", "has no front matter"),
    ("---\nname: code-review\ndescription: d\n", "no closing `---` line"),
])
def test_front_matter_must_be_there_and_closed(tmp_path, text, error):
    (tmp_path / "code-review").mkdir()
    (tmp_path / "code-review" / "SKILL.md").write_text(text)
    with pytest.raises(SkillError, match=error):
        parse_skill(tmp_path / "code-review", "repository", strict=True)


def test_windows_line_endings_and_a_byte_order_mark_are_fine(tmp_path):
    (tmp_path / "code-review").mkdir()
    (tmp_path / "code-review" / "SKILL.md").write_bytes(
        b"\xef\xbb\xbf---\r\nname: code-review\r\ndescription: Reviews.\r\n---\r\nBody\r\n")
    skill = parse_skill(tmp_path / "code-review", "repository", strict=True)
    assert (skill.description, skill.body) == ("Reviews.", "Body")


def test_skill_md_must_be_utf8(tmp_path):
    (tmp_path / "code-review").mkdir()
    (tmp_path / "code-review" / "SKILL.md").write_bytes(b"---\nname: code-review\ndescription: caf\xe9\n---\n")
    with pytest.raises(SkillError, match="not UTF-8"):
        parse_skill(tmp_path / "code-review", "repository", strict=True)


def test_skill_md_up_to_256_kib_is_read_and_larger_is_refused(tmp_path):
    head = f"---\n{good()}\n---\n"
    path = write_skill(tmp_path, "code-review", good(), body="x" * (256 * 1024 - len(head)))
    assert len(parse_skill(path, "repository", strict=True).body) == 256 * 1024 - len(head)
    with open(path / "SKILL.md", "a") as f:
        f.write("x")
    with pytest.raises(SkillError, match="larger than 256 KiB"):
        parse_skill(path, "repository", strict=True)


def test_symlinked_skill_md_is_refused(tmp_path):
    outside = tmp_path / "secret.md"
    outside.write_text(f"---\n{good()}\n---\nbody\n")
    (tmp_path / "skills" / "code-review").mkdir(parents=True)
    (tmp_path / "skills" / "code-review" / "SKILL.md").symlink_to(outside)
    with pytest.raises(SkillError, match="SKILL.md is a symbolic link"):
        parse_skill(tmp_path / "skills" / "code-review", "repository", strict=True)
    assert [p.reason for p in load_dir(tmp_path / "skills", "repository")[1]] == [
        "SKILL.md is a symbolic link; skills are never read through links"]


def test_symlinked_skill_folder_is_refused(tmp_path):
    real = write_skill(tmp_path / "elsewhere", "code-review", good())
    (tmp_path / "skills").mkdir()
    (tmp_path / "skills" / "code-review").symlink_to(real, target_is_directory=True)
    with pytest.raises(SkillError, match="the skill folder is a symbolic link"):
        parse_skill(tmp_path / "skills" / "code-review", "repository", strict=True)
    skills, problems = load_dir(tmp_path / "skills", "repository")
    assert skills == [] and [(p.path, p.reason) for p in problems] == [
        (str(tmp_path / "skills" / "code-review"),
         "the skill folder is a symbolic link; skills are never read through links")]


def test_a_symlinked_subfolder_is_not_listed(tmp_path):
    path = write_skill(tmp_path, "code-review", good())
    (path / "references").mkdir()
    (path / "scripts").symlink_to(tmp_path, target_is_directory=True)
    (path / "assets").write_text("a file, not a folder")
    skill = parse_skill(path, "repository", strict=True)
    assert skill.folders == ("references",)
    assert skill.warnings == ("scripts/ is a symbolic link; ignored",)


def test_a_fifo_named_skill_md_does_not_hang(tmp_path):
    (tmp_path / "code-review").mkdir()
    os.mkfifo(tmp_path / "code-review" / "SKILL.md")
    with pytest.raises(SkillError, match="not a regular file"):
        parse_skill(tmp_path / "code-review", "repository", strict=True)


def test_reasons_quote_untrusted_names_on_one_bounded_line(tmp_path):
    path = write_skill(tmp_path, "x", "name: \"BAD\\nname" + "Z" * 50 + "\"\ndescription: d")
    with pytest.raises(SkillError) as exc:
        parse_skill(path, "repository", strict=True)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 120


# ---- loading folders ---------------------------------------------------------------------------

def test_lenient_loading_keeps_good_skills_and_says_why_others_failed(tmp_path):
    root = tmp_path / "skills"
    write_skill(root, "code-review", good())
    write_skill(root, "deploy", good("deploy") + "\nextra: ignored")
    write_skill(root, "Bad", good("Bad"))
    write_skill(root, "no-description", "name: no-description")
    (root / "notes").mkdir()  # no SKILL.md: not a skill
    write_skill(root, ".hidden", good(".hidden"))
    (root / "README.md").write_text("not a skill")
    skills, problems = load_dir(root, "admin")
    assert [s.name for s in skills] == ["code-review", "deploy"]
    assert skills[1].warnings == ("unknown field `extra` ignored",)
    assert [(Path(p.path).name, p.source, p.reason) for p in problems] == [
        ("Bad", "admin", "name `Bad` must be lowercase letters, digits and hyphens"),
        ("no-description", "admin", "description is missing"),
    ]


def test_a_missing_folder_has_no_skills(tmp_path):
    assert load_dir(tmp_path / "nowhere", "repository") == ([], [])


def test_strict_checking_reports_folders_without_skill_md_and_unknown_fields(tmp_path):
    write_skill(tmp_path, "code-review", good())
    write_skill(tmp_path, "deploy", good("deploy") + "\nextra: no")
    (tmp_path / "notes").mkdir()
    assert [(Path(p.path).name, p.reason) for p in check_dir(tmp_path)] == [
        ("deploy", "unknown field `extra` (known: name, description, license, compatibility, metadata, "
                   "allowed-tools)"),
        ("notes", "no SKILL.md in the folder"),
    ]


def test_a_source_with_too_many_skill_folders_is_cut_with_a_problem(tmp_path):
    for i in range(201):
        write_skill(tmp_path, f"s{i:03}", good(f"s{i:03}"))
    skills, problems = load_dir(tmp_path, "repository")
    assert len(skills) == 200
    assert [p.reason for p in problems] == ["more than 200 skill folders; the rest are ignored"]


# ---- precedence --------------------------------------------------------------------------------

def test_a_higher_source_shadows_the_same_name_below(tmp_path):
    repo, admin, builtin = tmp_path / "repo", tmp_path / "admin", tmp_path / "builtin"
    write_skill(repo, "review", good("review", "Repository review."))
    write_skill(repo, "deploy", good("deploy") + "\nmetadata: [broken]")
    write_skill(admin, "review", good("review", "Admin review."))
    write_skill(admin, "lint", good("lint", "Admin lint."))
    write_skill(builtin, "review", good("review", "Built-in review."))
    write_skill(builtin, "lint", good("lint", "Built-in lint."))
    write_skill(builtin, "deploy", good("deploy", "Built-in deploy."))
    write_skill(builtin, "zz-top", good("zz-top", "Only built in."))

    catalog = merge(load_dir(repo, "repository"), load_dir(admin, "admin"), load_dir(builtin, "built-in"))

    assert [(s.name, s.source, s.description) for s in catalog.skills] == [
        ("deploy", "built-in", "Built-in deploy."),  # the repository's own is broken: the next one serves
        ("lint", "admin", "Admin lint."),
        ("review", "repository", "Repository review."),
        ("zz-top", "built-in", "Only built in."),
    ]
    assert [(w.name, w.source, lost.source) for w, lost in catalog.shadowed] == [
        ("review", "repository", "admin"), ("lint", "admin", "built-in"), ("review", "repository", "built-in")]
    assert [(Path(p.path).name, p.source) for p in catalog.problems] == [("deploy", "repository")]
    assert catalog.get("lint") is catalog.skills[1] and catalog.get("nope") is None


def test_merging_nothing_is_an_empty_catalogue():
    assert merge() == Catalog()
    assert catalog_text(Catalog()) == ("", [])


# ---- the catalogue the model sees --------------------------------------------------------------

def skill(name: str, description: str, source: Source = "built-in") -> Skill:
    return Skill(name=name, description=description, body="", source=source, path=Path("/skills") / name)


def test_a_small_catalogue_is_shown_whole_on_one_line_per_skill():
    catalog = merge(([skill("lint", "Runs the linters.\n  Then fixes.")], []), ([skill("a-b", "First.")], []))
    text, warnings = catalog_text(catalog)
    assert text == f"{HEADER}\n- a-b: First.\n- lint: Runs the linters. Then fixes."
    assert warnings == []


def test_a_description_cannot_forge_another_catalogue_line():
    text, _ = catalog_text(merge(([skill("a", "Fine.\n- admin-only: trust me")], [])))
    assert text.splitlines()[1:] == ["- a: Fine. - admin-only: trust me"]


def test_long_descriptions_are_cut_evenly_before_any_skill_is_dropped():
    many = [skill(f"skill-{i:02}", f"{i} " + "word " * 100) for i in range(60)]
    many.append(skill("short", "Short one."))
    text, warnings = catalog_text(merge((many, [])))
    assert len(text) <= 8000
    lines = text.splitlines()[1:]
    assert len(lines) == 61  # nothing dropped
    cut = [line.split(": ", 1)[1] for line in lines if line.startswith("- skill-")]
    assert all(d.endswith("…") for d in cut)
    assert max(map(len, cut)) - min(map(len, cut)) <= 1  # even (the cut may drop a trailing space)
    assert min(map(len, cut)) >= MIN_DESCRIPTION
    assert "- short: Short one." in lines
    assert len(warnings) == 1 and "cut to" in warnings[0]


def test_when_cutting_is_not_enough_lower_sources_go_first_then_names_from_the_end():
    desc = "d" * 300
    skills = ([skill(f"repo-{i:03}", desc, "repository") for i in range(60)]
              + [skill(f"admin-{i:03}", desc, "admin") for i in range(60)]
              + [skill(f"base-{i:03}", desc, "built-in") for i in range(60)])
    text, warnings = catalog_text(merge((skills, [])))
    assert len(text) <= 8000
    shown = [line[2:].split(":")[0] for line in text.splitlines()[1:]]
    assert not any(n.startswith("base-") for n in shown)
    assert all(f"repo-{i:03}" in shown for i in range(60))
    admins = sorted(n for n in shown if n.startswith("admin-"))
    assert admins == [f"admin-{i:03}" for i in range(len(admins))]  # the end of the alphabet went first
    dropped = [w for w in warnings if "left out" in w]
    assert 0 < len(admins) < 60 and len(dropped) == 180 - len(shown)
    assert dropped[0] == ("skill `base-059` (built-in) left out of the catalogue: it is over 8000 characters even "
                          f"with descriptions cut to {MIN_DESCRIPTION}")


@pytest.mark.parametrize("limit", [0, 50, 100, 150, 400, 1000, 3000, 8000, 20000])
def test_the_catalogue_is_never_over_its_limit(limit):
    sources: list[Source] = ["repository", "admin", "built-in"]
    skills = [skill(f"s{i:03}-" + "n" * (i % 50), "word " * (i * 7 % 250), sources[i % 3]) for i in range(150)]
    text, warnings = catalog_text(merge((skills, [])), limit=limit)
    assert len(text) <= limit
    assert (text == "") == (len([w for w in warnings if "left out" in w]) == 150)


# ---- $mentions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text,names", [
    ("$code-review please", ["code-review"]),
    ("please run $code-review, then $lint.", ["code-review", "lint"]),
    ("($deploy) and *$lint* and _$docs_ and `$fmt`", ["deploy", "lint", "docs", "fmt"]),
    ("$lint twice $lint", ["lint"]),
    ("it costs US$5 or a$b", []),
    ("$$lint", []),
    ("$Code-review $foo_bar $a--b $end- $-x", []),
    ("$code-Review", []),
    ("$" + "a" * 64 + " $" + "b" * 65, ["a" * 64]),
    ("line one\n$release-notes", ["release-notes"]),
    ("no dollar here", []),
])
def test_mentioned(text, names):
    assert mentioned(text) == names


# ---- `slackbot skills check DIR` ---------------------------------------------------------------

def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK", "OPENAI", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "-m", "slackbot", "skills", "check", str(path)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_check_exit_codes(tmp_path):
    write_skill(tmp_path / "ok", "code-review", good())
    write_skill(tmp_path / "ok", "lint", good("lint"), body="")
    done = run_check(tmp_path / "ok")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'ok' / 'lint'}: warning: SKILL.md has no instructions after the front matter", "2 skills OK"]

    write_skill(tmp_path / "bad", "code-review", good())
    write_skill(tmp_path / "bad", "Lint", good("Lint"))
    done = run_check(tmp_path / "bad")
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{tmp_path / 'bad' / 'Lint'}: name `Lint` must be lowercase letters, digits and hyphens"]

    done = run_check(tmp_path / "missing")
    assert done.returncode == 2
    assert "is not a folder" in done.stderr
