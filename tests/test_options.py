from pathlib import Path

from slackbot.agent.instructions import load_agents_md
from slackbot.slack.options import MentionOptions, parse_options


def test_mention_options_are_taken_out_of_the_text():
    parsed = parse_options("repo=api branch=release-2 fix the <https://x.y/z|date> bug model=gpt-x")
    assert parsed == MentionOptions("fix the <https://x.y/z|date> bug", "api", "release-2", "gpt-x")
    assert parse_options("repo=<https://git.example.com/a.git> go").repo == "https://git.example.com/a.git"
    assert parse_options("no options here") == MentionOptions("no options here")


def test_agents_md_root_to_leaf_with_override_and_cap(tmp_path: Path):
    (tmp_path / "AGENTS.md").write_text("root rules")
    sub = tmp_path / "pkg" / "inner"
    sub.mkdir(parents=True)
    (tmp_path / "pkg" / "AGENTS.md").write_text("pkg rules")
    (tmp_path / "pkg" / "AGENTS.override.md").write_text("pkg override")
    (sub / "AGENTS.md").write_text("inner rules")
    text = load_agents_md(tmp_path, sub)
    assert text.index("root rules") < text.index("pkg override") < text.index("inner rules")
    assert "pkg rules" not in text
    (tmp_path / "AGENTS.md").write_text("x" * 40_000)
    capped = load_agents_md(tmp_path)
    assert len(capped.encode()) < 33 * 1024 and "cut at 32 KiB" in capped


def test_agents_md_symlinks_are_not_followed(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("xoxb-very-secret")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "AGENTS.md").symlink_to(secret)
    (repo / "AGENTS.override.md").symlink_to("/proc/self/environ")
    assert load_agents_md(repo) == ""
