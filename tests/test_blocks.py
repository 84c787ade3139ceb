"""Pure builders and mrkdwn: compared as dicts and validated like Slack would."""

from slack_sdk.models.blocks import Block

from slackbot.protocol import FileStat, TodoEntry, Usage
from slackbot.slack.blocks import StatusState, clock, final_blocks, short, status_blocks
from slackbot.slack.mrkdwn import split, to_mrkdwn


def _valid(blocks):
    for b in blocks:
        parsed = Block.parse(b)
        assert parsed is not None, b
        parsed.validate_json()


def test_working_status_has_command_plan_and_stop_button():
    st = StatusState(12, "working", phase="Running", command="pytest -q\nsecond line", commands=3,
                     plan=(TodoEntry("read code", True), TodoEntry("fix")), elapsed_s=75)
    text, blocks = status_blocks(st)
    assert text == "⚙️ Working… #12 • 1:15"
    assert blocks[1] == {"type": "context", "elements": [
        {"type": "mrkdwn", "text": "Running • `pytest -q…` • 3 commands run"}]}
    assert blocks[2]["text"]["text"] == "✅ read code\n▫️ fix"
    assert blocks[-1]["elements"][0]["action_id"] == "task_stop"
    assert blocks[-1]["elements"][0]["value"] == "12"
    _valid(blocks)


def test_final_status_has_no_button_and_names_who_stopped():
    text, blocks = status_blocks(StatusState(3, "stopped", stopped_by="U2", elapsed_s=5))
    assert text == "⏹️ Stopped by <@U2> #3 • 0:05"
    assert all(b["type"] != "actions" for b in blocks)
    text, _ = status_blocks(StatusState(4, "failed", error="Docker is not reachable"))
    assert text == "❌ Failed #4: Docker is not reachable"
    assert status_blocks(StatusState(5, "queued", position=2))[0] == "⏳ Queued (position 2) • #5"


def test_final_reply_lists_files_time_tokens():
    text, blocks, attach = final_blocks(
        task_id=7, state="done", answer="**Added** `hello()`", error="",
        files=(FileStat("greet.py", 4, 0, "add"), FileStat("test_greet.py", 6, 1)),
        elapsed_s=61, usage=Usage(1200, 100, 80))
    assert not attach
    assert blocks[0]["text"]["text"] == "*Added* `hello()`"
    assert blocks[1]["text"]["text"] == "*Files changed*\n`greet.py` +4 −0 (new)\n`test_greet.py` +6 −1"
    assert blocks[2]["elements"][0]["text"] == "#7 • ⏱ 1:01 • 1,200 tokens in (100 cached) / 80 out"
    _valid(blocks)


def test_long_answer_is_split_and_attached_never_cut_silently():
    answer = ("word " * 600 + "\n\n") * 10  # ~30,000 characters
    _text, blocks, attach = final_blocks(task_id=1, state="done", answer=answer, error="", files=(),
                                         elapsed_s=1, usage=Usage())
    assert attach
    assert len(blocks) <= 50
    assert any("attached" in b.get("elements", [{}])[0].get("text", "") for b in blocks if b["type"] == "context")
    _valid(blocks)


def test_mrkdwn_conversion():
    md = "# Title\n**bold** *it* [link](https://x.y) a<b `a<b`\n- item"
    assert to_mrkdwn(md) == "*Title*\n*bold* _it_ <https://x.y|link> (x.y) a&lt;b `a&lt;b`\n• item"


def test_split_keeps_code_fences_balanced():
    text = "intro\n```\n" + "line\n" * 2000 + "```\nend"
    chunks = split(text, 2900)
    assert len(chunks) > 1
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert all(len(c) <= 2910 for c in chunks)


def test_helpers():
    assert clock(3725) == "1:02:05"
    assert short("a" * 100, 10) == "a" * 9 + "…"
