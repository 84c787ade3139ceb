"""One text renderer: the terminal's live lines and the transcript file read the same."""

from __future__ import annotations

from types import SimpleNamespace

from slackbot.exec import PrintSink
from slackbot.protocol import (
    AgentMessage, CommandExecution, ErrorItem, FileChange, FileChangeEntry, ItemCompleted, ItemStarted, LeftOut,
    TaskFinished, TaskProgress, TaskRef, TodoEntry, TodoList, TurnCompleted, TurnFailed, TurnStarted, Usage,
    UserMessage, event_to_dict,
)
from slackbot.slack.transcript import render_transcript
from slackbot.text import render_event

EVENTS = [
    TaskProgress("Starting sandbox"),
    TurnStarted(),
    ItemCompleted(TodoList("i0", (TodoEntry("read", True), TodoEntry("fix")))),
    ItemStarted(CommandExecution("i1", "pytest -q")),
    ItemCompleted(CommandExecution("i1", "pytest -q", "1 failed\n", 1, "failed")),
    ItemCompleted(UserMessage("i2", "try the other fix", "U2")),
    ItemCompleted(AgentMessage("i3", "Fixed the test.")),
    ItemCompleted(FileChange("f", (FileChangeEntry("a.py", "update"), FileChangeEntry("b.py", "add")))),
    TurnCompleted(Usage(120, 0, 30)),
    TaskFinished("done", answer="Fixed the test.", elapsed_s=3.25, usage=Usage(120, 0, 30), branch="slackbot/fix-1",
                 push="pr_opened", pr_url="https://github.com/o/r/pull/3", left_out=(LeftOut("big.bin", 60000000),)),
]

EXPECTED = """[Starting sandbox]

--- plan ---
[x] read
[ ] fix
$ pytest -q
1 failed
[exit 1]

--- message from U2 ---
try the other fix

--- agent ---
Fixed the test.

--- files changed ---
update a.py
add b.py
Finished: done in 3.2s, 120 tokens in, 30 out
branch: slackbot/fix-1
automatic push: pr_opened
pull request: https://github.com/o/r/pull/3
left out of the commit (too large): big.bin (60000000 bytes)"""


def test_the_transcript_renders_stored_events():
    task = SimpleNamespace(id=7, requester="U1", requester_name="Ann", status="done", prompt="fix the test", plan="",
                           approved_by="")
    stored = [event_to_dict(e) for e in EVENTS]
    stored.insert(3, {"type": "item.completed", "item": {"type": "from_a_newer_version", "id": "x"}})
    assert render_transcript(task, stored) == (
        "Task #7 requested by Ann\nStatus: done\nRequest: fix the test\n\n" + EXPECTED + "\n")


async def test_the_terminal_prints_the_same_text_live(capsys):
    sink = PrintSink([7], as_json=False)
    ref = TaskRef(task_id=7, thread_id=1, channel="cli", thread_ts="t", requester="cli")
    for event in EVENTS:
        await sink.handle(ref, event)
    assert capsys.readouterr().out == EXPECTED + "\n"
    assert sink.done.is_set() and sink.result == EVENTS[-1]


def test_failures_are_spelled_out():
    assert render_event(ItemCompleted(ErrorItem("e", "The model endpoint answered 500: boom"))) == (
        "!!! The model endpoint answered 500: boom")
    assert render_event(TurnFailed("boom")) == ""  # the final line carries the error
    finished = TaskFinished("stopped", error="", stopped_by="U2", elapsed_s=1.0)
    assert render_event(finished) == "Finished: stopped in 1.0s, 0 tokens in, 0 out\nstopped by U2"
    failed = TaskFinished("failed", error="Timed out after 60 s (SLACKBOT_TASK_TIMEOUT_S).", elapsed_s=60.0)
    assert render_event(failed).endswith("\nTimed out after 60 s (SLACKBOT_TASK_TIMEOUT_S).")
