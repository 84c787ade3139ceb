"""Skills in tasks, end to end: the catalogue in the system prompt, `$name` and `load_skill` putting a
body into the model's request, the files read-only at /skills in a real sandbox, and repository skills
only from a linked repository's base commit."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from slackbot.app import Bot
from tests.conftest import make_settings
from tests.fakes import shell, text, tool_calls
from tests.helpers import mention, reply, wait_final
from tests.slack_actions import command


def git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def skill(folder: Path, name: str, description: str, body: str, script: str = "") -> None:
    (folder / name).mkdir(parents=True)
    (folder / name / "SKILL.md").write_text(f"---\nname: {name}\ndescription: {description}\n---\n{body}\n")
    if script:
        (folder / name / "scripts").mkdir()
        (folder / name / "scripts" / "run.sh").write_text(script)
        os.chmod(folder / name / "scripts" / "run.sh", 0o755)


def remote_with_skills(tmp: Path, name: str, skills: dict[str, str]) -> Path:
    """A bare repository whose main branch holds the given files (paths → text)."""
    seed = tmp / f"{name}-seed"
    git("init", "-q", "-b", "main", str(seed))
    (seed / "README.md").write_text("# app\n")
    for path, content in skills.items():
        (seed / path).parent.mkdir(parents=True, exist_ok=True)
        (seed / path).write_text(content)
    os.symlink("/etc/hostname", seed / ".agents" / "skills" / "linked")  # a link: never followed
    git("add", "-A", cwd=seed)
    git("-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "initial", cwd=seed)
    remote = tmp / f"{name}.git"
    git("clone", "-q", "--bare", str(seed), str(remote))
    return remote


def front(name: str, description: str, body: str) -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\n{body}\n"


def system_text(body: dict) -> str:
    return body["messages"][0]["content"]


def tool_names(body: dict) -> list[str]:
    return [t["function"]["name"] for t in body.get("tools", [])]


@pytest.mark.docker
async def test_skills_reach_the_model_and_the_sandbox(slack, model, tmp_path):
    admin_dir = tmp_path / "admin-skills"
    skill(admin_dir, "deploy-checklist", "Steps our team follows before a deploy.", "ADMIN-DEPLOY-BODY",
          script="#!/bin/sh\necho admin script ran\n")
    skill(admin_dir, "write-tests", "Our own way of writing tests.", "ADMIN-WRITE-TESTS-BODY")
    remote = remote_with_skills(tmp_path, "app", {
        ".agents/skills/code-review/SKILL.md": front("code-review", "The team's review rules.", "REPO-REVIEW-BODY"),
        ".codex/skills/code-review/SKILL.md": front("code-review", "Older copy.", "CODEX-REVIEW-BODY"),
        ".codex/skills/legacy-notes/SKILL.md": front("legacy-notes", "Notes kept in the older folder.", "LEGACY"),
        ".agents/skills/broken/SKILL.md": "---\nname: Broken Name\n---\nno description\n",
    })
    url_only = remote_with_skills(tmp_path, "other", {
        ".agents/skills/url-skill/SKILL.md": front("url-skill", "From a repository nobody linked.", "URL-BODY")})
    settings = make_settings(tmp_path / "data", slack, model, SLACKBOT_ADMINS="UADMIN",
                             SLACKBOT_SKILLS_DIR=str(admin_dir))
    async with Bot(settings, port=0):
        assert "Linked `app`" in await command(slack, f"repo add app {remote} main", user="UADMIN")
        model.script_for("review-this", [
            tool_calls([("load_skill", {"name": "deploy-checklist"})]),
            tool_calls([("load_skill", {"name": "no-such-skill"})]),
            shell("ls /skills; /skills/deploy-checklist/scripts/run.sh; cat /skills/code-review/SKILL.md; "
                  "touch /skills/new 2>&1; echo x >> /skills/code-review/SKILL.md 2>&1; "
                  "rm -rf /skills/deploy-checklist 2>&1; ls /skills/deploy-checklist; "
                  "mkdir -p .agents/skills/planted && printf -- '---\\nname: planted\\ndescription: planted by "
                  "the agent\\n---\\nPLANTED\\n' > .agents/skills/planted/SKILL.md"),
            text("Reviewed."),
        ])
        ts = await mention(slack, "$code-review review-this please", user="U1")
        await wait_final(slack, "C1", ts)
        requests = model.requests_for("review-this")
        first = requests[0].body
        system = system_text(first)
        # The catalogue: names and descriptions of every source; the repository's code-review won.
        for line in ("- code-review: The team's review rules.", "- deploy-checklist: Steps our team follows",
                     "- write-tests: Our own way of writing tests.", "- legacy-notes:", "- release-notes:",
                     "- fix-ci:"):
            assert line in system
        assert "Broken Name" not in system and "url-skill" not in system and "linked" not in system
        # $code-review put the winning body into the request itself.
        request = first["messages"][-1]["content"]
        assert request.startswith("$code-review review-this please")
        assert "REPO-REVIEW-BODY" in request and "CODEX-REVIEW-BODY" not in request
        assert 'folder="/skills/code-review"' in request
        # load_skill is offered with the names, and answers with a body or a clear error.
        assert "load_skill" in tool_names(first)
        enum = next(t for t in first["tools"] if t["function"]["name"] == "load_skill")["function"]["parameters"]
        assert "deploy-checklist" in enum["properties"]["name"]["enum"]
        results = [m["content"] for m in requests[-1].body["messages"] if m["role"] == "tool"]
        assert "ADMIN-DEPLOY-BODY" in results[0]
        assert "no skill named 'no-such-skill'" in results[1]
        # In the sandbox: readable, runnable, not writable.
        out = results[2]
        assert "admin script ran" in out and "REPO-REVIEW-BODY" in out
        assert out.count("Read-only file system") >= 3
        assert "scripts" in out.split("admin script ran")[-1]  # the folder survived rm -rf

        # `/agent skills`: sources, shadowing, what could not be loaded and why.
        listing = await command(slack, "skills", user="U1")
        assert "`code-review` (repository) — The team's review rules. · shadows the repository, built-in one" \
            in listing
        assert "`write-tests` (admin)" in listing and "shadows the built-in one" in listing
        assert "`legacy-notes` (repository)" in listing and "`fix-ci` (built-in)" in listing
        assert "*Not loaded*" in listing and "`.agents/skills/broken` (repository)" in listing
        assert "as of its last fetch" in listing and str(tmp_path) not in listing

        # A follow-up: what the agent planted in the workspace is not a skill.
        model.script_for("and-again", [text("ok")])
        await reply(slack, "and-again", channel="C1", thread_ts=ts, user="U1")
        await wait_final(slack, "C1", ts, count=2)
        assert "planted" not in system_text(model.requests_for("review-this")[-1].body)
        again = [r for r in model.requests if "and-again" in json.dumps(r.body["messages"][-1])][0].body
        assert "planted" not in system_text(again) and "- code-review" in system_text(again)

        # A repository given by URL (not linked by an admin) brings no skills.
        model.script_for("by-url", [text("ok")])
        ts2 = await mention(slack, f"repo={url_only} by-url", user="UADMIN")
        await wait_final(slack, "C1", ts2)
        by_url = system_text(model.requests_for("by-url")[0].body)
        assert "url-skill" not in by_url and "- code-review: Review" in by_url  # the built-in one instead
        # The Home tab lists the built-in and admin skills; admins get a Settings button that opens the modal.
        for user in ("U1", "UADMIN"):
            event = slack.event_callback({"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"})
            await slack.wait_ack(await slack.socket_send("events_api", event))
            await slack.wait_for(lambda: "deploy-checklist" in json.dumps(slack.home_views.get(user, {})), timeout=15)
        assert "settings_open" not in json.dumps(slack.home_views["U1"])
        assert "settings_open" in json.dumps(slack.home_views["UADMIN"])
        assert "`code-review` (built-in)" in json.dumps(slack.home_views["UADMIN"])
        opened = len(slack.opened_views)
        await slack.wait_ack(await slack.socket_send("interactive", slack.block_action_payload(
            "settings_open", "", "UADMIN", "D1", "1.0")))
        await slack.wait_for(lambda: len(slack.opened_views) > opened)
        assert slack.opened_views[-1]["callback_id"] == "settings_save"
        assert not any(b.get("block_id", "").startswith("ch:") for b in slack.opened_views[-1]["blocks"])
    assert slack.block_errors == []
    # The task folders the sandbox mounted are gone once the tasks end.
    assert not any((tmp_path / "data" / "skills").glob("task-*"))
