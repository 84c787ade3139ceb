"""Text from the model, commands, git and people is escaped wherever it lands in Slack: it can never
ping a channel, mention someone, or hide where a link goes."""

from __future__ import annotations

import json

import pytest

from slackbot.protocol import Usage
from slackbot.slack.blocks import StatusState, final_blocks, notice_blocks, status_blocks
from slackbot.slack.ids import parse_id
from slackbot.slack.mrkdwn import clip, compose, link, mention, to_mrkdwn
from tests.fakes import error, shell, text
from tests.helpers import block_text, bot_messages, mention as send_mention, status_message, wait_final

PINGS = ("<!channel>", "<!here>", "<!everyone>", "<@U999>", "<!subteam^S1>", "<#C999>")
HOSTILE = "look " + " ".join(PINGS) + " <https://evil.example|https://good.example>"


def assert_inert(text: str) -> None:
    for ping in PINGS:
        assert ping not in text, (ping, text)
    assert "<https://evil.example|" not in text


# ---- builders -------------------------------------------------------------------------------------


def test_status_text_and_blocks_escape_the_error():
    for state in ("failed", "interrupted"):
        fallback, blocks = status_blocks(StatusState(4, state, error=HOSTILE))
        assert_inert(fallback)
        assert_inert(json.dumps(blocks))
        assert "&lt;!channel&gt;" in fallback
    fallback, blocks = status_blocks(StatusState(5, "working", phase=HOSTILE, command=HOSTILE, note=HOSTILE))
    assert_inert(fallback + json.dumps(blocks))


def test_who_stopped_is_a_mention_only_when_it_is_a_user_id():
    assert status_blocks(StatusState(3, "stopped", stopped_by="U2"))[0] == "⏹️ Stopped by <@U2> #3 • 0:00"
    fallback, _ = status_blocks(StatusState(3, "stopped", stopped_by="<!channel>"))
    assert_inert(fallback)
    _, blocks, _ = final_blocks(task_id=3, state="stopped", answer="", error="", files=(), elapsed_s=1,
                                usage=Usage(), stopped_by="U2")
    assert blocks[0]["text"]["text"] == "⏹️ Stopped by <@U2>."


def test_final_reply_escapes_error_note_and_answer():
    fallback, blocks, _ = final_blocks(task_id=1, state="failed", answer=HOSTILE, error=HOSTILE, files=(),
                                       elapsed_s=1, usage=Usage(), note=HOSTILE)
    assert_inert(fallback + json.dumps(blocks))
    _, blocks, _ = final_blocks(task_id=1, state="done", answer="ok", error="", files=(), elapsed_s=1,
                                usage=Usage(), pr_url="https://github.com/a/b/pull/1|<!channel>")
    assert_inert(json.dumps(blocks))
    assert "<https://github.com/a/b/pull/1%7C&lt;!channel&gt;>" in json.dumps(blocks)


def test_notices_escape_everything_but_mentions_we_build():
    fallback, blocks = notice_blocks(f"remote: {HOSTILE} &gt; done")
    assert_inert(fallback)
    assert fallback == blocks[0]["text"]["text"]
    assert "&amp;gt; done" in fallback  # what git said, shown as it was: no entity turns into markup
    fallback, _ = notice_blocks("Only ", mention("U1"), " can push; git said: <@U999>")
    assert fallback == "Only <@U1> can push; git said: &lt;@U999&gt;"
    assert compose(f"x {mention('U1')}") == "x &lt;@U1&gt;"  # a mention pasted into a plain string is text


def test_model_links_show_where_they_go():
    assert to_mrkdwn("[https://good.example](https://evil.example/x)") == \
        "<https://evil.example/x|https://good.example> (evil.example)"
    assert to_mrkdwn("[docs](https://docs.example/a?b=1&c=2)") == \
        "<https://docs.example/a?b=1&amp;c=2|docs> (docs.example)"
    assert to_mrkdwn("[https://x.example/a](https://x.example/a)") == "<https://x.example/a|https://x.example/a>"
    assert to_mrkdwn("[x.example](https://x.example/a)") == "<https://x.example/a|x.example>"
    assert to_mrkdwn("[a@b.example](mailto:a@b.example)") == "<mailto:a@b.example|a@b.example>"
    assert to_mrkdwn("[me](https://bob@evil.example)") == "<https://bob@evil.example|me> (evil.example)"
    # Only web and mail targets become links at all.
    assert to_mrkdwn("[all](!channel) [x](javascript:alert(1))") == "[all](!channel) [x](javascript:alert(1))"
    assert_inert(to_mrkdwn(HOSTILE))
    assert link("javascript:alert(1)") == "javascript:alert(1)"


def test_clip_never_leaves_half_an_entity_or_link():
    assert clip("a &amp; b", 4) == "a "
    assert clip("see <https://x.example|x>", 10) == "see "
    assert clip("short", 10) == "short"


def test_ids_are_ascii_digits_within_the_database():
    assert parse_id("42") == 42 and parse_id("#7") == 7 and parse_id(" 0003 ") == 3
    for bad in ("²", "٣", "1e3", "-1", "", "#", "12a", "99999999999999999999", "9223372036854775808", "1" * 5000):
        assert parse_id(bad) is None, bad
    assert parse_id("2147483647") == 2**31 - 1  # INTEGER columns: int4 on PostgreSQL
    assert parse_id("2147483648") is None


# ---- end to end -----------------------------------------------------------------------------------


@pytest.mark.docker
async def test_command_output_and_answers_are_shown_escaped(slack, model, bot):
    model.script([shell(f"echo '{HOSTILE}'; sleep 2"),
                  text(f"The command printed {HOSTILE}. See [https://good.example](https://evil.example/x).")])
    ts = await send_mention(slack, "print something hostile")
    final = await wait_final(slack, "C1", ts)
    assert "&lt;!channel&gt;" in block_text(final)
    assert "<https://evil.example/x|https://good.example> (evil.example)" in block_text(final)
    sent = [c.params for c in slack.calls if c.method in ("chat.postMessage", "chat.update")]
    assert any("echo" in json.dumps(p) for p in sent)  # the status showed the command
    for params in sent:
        assert_inert(json.dumps(params.get("text", "")) + json.dumps(params.get("blocks", [])))


@pytest.mark.docker
async def test_a_failure_quoting_hostile_text_is_escaped_in_status_and_reply(slack, model, bot):
    model.script([error(400, f"bad request: {HOSTILE}")])
    ts = await send_mention(slack, "fail loudly")
    final = await wait_final(slack, "C1", ts)
    assert "Failed" in block_text(final) and "&lt;!channel&gt;" in block_text(final)
    status = status_message(slack, "C1", ts)
    await slack.wait_for(lambda: slack.message("C1", status["ts"])["text"].startswith("❌ Failed"), timeout=20)
    assert "&lt;!channel&gt;" in slack.message("C1", status["ts"])["text"]
    for m in bot_messages(slack, "C1", ts):
        for version in [m] + m.get("edits", []):
            assert_inert((version.get("text") or "") + json.dumps(version.get("blocks")))
