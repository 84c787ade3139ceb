"""Files attached in Slack: placed in the workspace's `.slack-files/` through the engine, listed in
the request, images given to the model; hostile names, URLs and workspaces (SECURITY.md F1–F6)."""

from __future__ import annotations

import base64
import json

import pytest

from slackbot.agent import ModelError, OpenAIModel
from slackbot.agent.model import chat_part, with_images
from slackbot.app import Bot
from slackbot.runs.attachments import safe_name, shown_size, unique
from slackbot.runs.downloads import Origins
from tests.conftest import make_settings
from tests.fakes import error, shell, text
from tests.fakes.slack_files import Elsewhere
from tests.helpers import block_text, bot_messages, mention, output_of, reply, wait_final

docker = pytest.mark.docker
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


async def deliver(slack, payload: dict) -> None:
    await slack.wait_ack(await slack.socket_send("events_api", payload))


def user_contents(body: dict) -> list:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def as_text(content) -> str:
    return content if isinstance(content, str) else "".join(p.get("text") or "" for p in content)


def tool_outputs(body: dict) -> list[str]:
    return [output_of(m["content"]) for m in body["messages"] if m["role"] == "tool"]


def notices(slack, channel: str, ts: str) -> list[str]:
    return [block_text(m) for m in bot_messages(slack, channel, ts) if "I could not take" in (m.get("text") or "")]


# ---- units -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, safe", [
    ("notes.txt", "notes.txt"), ("../../etc/passwd", "passwd"), (".bashrc", "bashrc"), ("..", "file-F1"),
    ("evil\nname.txt", "evil name.txt"), ("-rf", "rf"), ("--- .x", "x"), ("a\\..\\b.txt", "b.txt"),
    ("\u202etxt.exe", "txt.exe"), ("zero\u200bwidth.md", "zerowidth.md"), ("tab\there\x00.txt", "tab here.txt"),
    ("é" * 200 + ".png", "é" * 58 + ".png"), ("", "file-F1"),
])
def test_names_are_base_names_without_tricks(name, safe):
    assert safe_name(name, "F1") == safe
    assert len(safe_name(name, "F1").encode()) <= 120


def test_duplicate_names_get_a_number_and_sizes_read_well():
    taken: set[str] = set()
    assert [unique(n, taken) for n in ("a.txt", "a.txt", "A.txt", "b")] == ["a.txt", "a-2.txt", "A-3.txt", "b"]
    assert [shown_size(n) for n in (1, 17, 2048, 31 * 2**20, 20 * 2**20)] == [
        "1 byte", "17 bytes", "2 KB", "31 MB", "20 MB"]


def test_the_token_goes_only_to_slacks_hosts():
    origins = Origins("http://127.0.0.1:4000/api/")
    assert not origins.refuse("http://127.0.0.1:4000/files-pri/T-F1/a.txt")
    assert not origins.refuse("https://files.slack.com/files-pri/T-F1/a.txt")
    for url in ("http://127.0.0.1:4001/x", "https://127.0.0.1:4000/x", "http://evil.example/x",
                "http://127.0.0.1:4000@evil.example/x", "https://files.slack.com.evil.example/x",
                "http://files.slack.com/x", "https://files.slack.com:8443/x", "file:///etc/passwd", "not a url"):
        assert origins.refuse(url), url
    real = Origins("https://slack.com/api/")
    assert not real.refuse("https://files.slack.com/files-pri/T-F1/download/a.txt")
    assert real.refuse("https://slack.com.evil.example/x")


def test_image_parts_are_added_to_a_copy_only():
    history = [{"role": "system", "content": "s [image #0123456789abcdef]"},
               {"role": "user", "content": "look [image #0123456789abcdef] and [image #fedcba9876543210]"}]
    sent = with_images(history, {"0123456789abcdef": "data:image/png;base64,AAAA"}, chat_part)
    assert sent[0] is history[0] and isinstance(history[1]["content"], str)
    assert sent[1]["content"] == [{"type": "text", "text": history[1]["content"]},
                                  {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]


def image_client(model, api: str, mode: str, shared: set[str]) -> OpenAIModel:
    return OpenAIModel(name="test-model", api=api, base_url=model.base_url, api_key="sk-test", retries=0,
                       timeout_s=30.0, image_input=mode, no_images=shared)


@pytest.mark.parametrize("api", ["chat", "responses"])
async def test_auto_image_input_goes_on_without_images_where_the_endpoint_refuses_them(model, api):
    shared: set[str] = set()
    llm = image_client(model, api, "auto", shared)
    assert llm.add_image("0123456789abcdef", "data:image/png;base64,AAAA")
    history = [{"role": "user", "content": "see [image #0123456789abcdef]"}]
    model.script([error(400, "image input is not supported"), text("answered without it"), text("again")])
    assert (await llm.complete(history, [])).text == "answered without it"
    first, second = (r.body for r in model.requests)
    assert "data:image/png;base64,AAAA" in json.dumps(first) and "AAAA" not in json.dumps(second)
    assert shared == {"test-model"}  # remembered: the next task's client does not try again
    later = image_client(model, api, "auto", shared)
    assert not later.add_image("fedcba9876543210", "data:image/png;base64,BBBB")
    await later.complete([{"role": "user", "content": "[image #fedcba9876543210]"}], [])
    assert "BBBB" not in json.dumps(model.requests[-1].body)


async def test_image_input_on_reports_a_refusal_and_off_sends_none(model):
    on = image_client(model, "chat", "on", set())
    on.add_image("0123456789abcdef", "data:image/png;base64,AAAA")
    model.script([error(400, "no images here"), text("plain")])
    with pytest.raises(ModelError, match="400"):
        await on.complete([{"role": "user", "content": "[image #0123456789abcdef]"}], [])
    off = image_client(model, "chat", "off", set())
    assert not off.add_image("0123456789abcdef", "data:image/png;base64,AAAA")
    await off.complete([{"role": "user", "content": "[image #0123456789abcdef]"}], [])
    assert "AAAA" not in json.dumps(model.requests[-1].body)


# ---- end to end: the fake Slack over HTTP, the real sandbox ---------------------------------------

@docker
async def test_files_of_a_mention_are_in_the_workspace_and_listed(slack, model, bot):
    notes = slack.share_file("notes.txt", b"hello from slack\n")
    data = slack.share_file("data.csv", b"a,b\n1,2\n", mimetype="text/csv")
    model.script([shell("cat /workspace/.slack-files/notes.txt /workspace/.slack-files/data.csv; "
                        "stat -c '%u %a %F %n' /workspace/.slack-files /workspace/.slack-files/*"), text("Read them.")])
    payload = slack.file_event("C1", "U1", "summarise the notes", [notes, slack.partial(data)], mention=True)
    await deliver(slack, payload)
    ts = payload["event"]["ts"]
    final = await wait_final(slack, "C1", ts)
    assert "Read them." in block_text(final)
    request = as_text(user_contents(model.requests[0].body)[-1])
    assert request.startswith("summarise the notes\n\nAttached files (in /workspace/.slack-files/):\n"), request
    assert "- notes.txt (17 bytes, text/plain)" in request and "- data.csv (8 bytes, text/csv)" in request
    out = tool_outputs(model.requests[1].body)[-1]
    assert "hello from slack\na,b\n1,2\n" in out
    assert "1000 755 directory /workspace/.slack-files" in out  # made by the sandbox user, not the host
    assert "1000 644 regular file /workspace/.slack-files/notes.txt" in out
    assert slack.calls_to("files.info") == [{"file": data["id"]}]  # the partial object, looked up
    assert {r["host"] for r in slack.file_requests} == {f"127.0.0.1:{slack.port}"}
    assert all(r["authorized"] for r in slack.file_requests) and not notices(slack, "C1", ts)


@docker
async def test_a_file_in_a_direct_message_is_taken_too(slack, model, bot):
    notes = slack.share_file("todo.md", b"- ship it\n", mimetype="text/markdown")
    model.script([shell("cat /workspace/.slack-files/todo.md"), text("Done.")])
    payload = slack.file_event("D1", "U1", "do what the list says", [notes])
    await deliver(slack, payload)
    await wait_final(slack, "D1", payload["event"]["ts"])
    assert "- ship it" in tool_outputs(model.requests[1].body)[-1]


@docker
async def test_an_image_is_image_input_and_stays_out_of_the_history(slack, model, bot):
    shot = slack.share_file("screen shot.png", PNG, mimetype="image/png")
    model.script([text("A one-pixel image.")])
    payload = slack.file_event("C1", "U1", "what is in this picture?", [shot], mention=True)
    await deliver(slack, payload)
    ts = payload["event"]["ts"]
    await wait_final(slack, "C1", ts)
    content = user_contents(model.requests[0].body)[-1]
    assert isinstance(content, list) and content[0]["type"] == "text"
    assert "- screen shot.png (" in content[0]["text"] and "also shown to you as an image: [image #" in content[0]["text"]
    assert content[1:] == [{"type": "image_url",
                            "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}]
    # The stored history and transcript keep the marker only; a follow-up sends no image.
    b64 = base64.b64encode(PNG).decode()
    thread = await bot.store.thread_for("C1", ts)
    assert thread is not None and thread.id is not None
    assert b64 not in json.dumps([r.data for r in await bot.store.history(thread.id)])
    assert b64 not in json.dumps(await bot.store.events(1))
    model.script([text("Still here.")])
    await reply(slack, "and now?", channel="C1", thread_ts=ts)
    await wait_final(slack, "C1", ts, count=2)
    assert b64 not in json.dumps(model.requests[-1].body)


@docker
async def test_too_big_lying_missing_and_foreign_files_are_told_and_the_task_runs(slack, model, tmp_path):
    settings = make_settings(tmp_path / "d", slack, model, SLACKBOT_ATTACHMENT_MAX="1k")
    elsewhere = await Elsewhere().start()
    try:
        big = slack.share_file("report.pdf", b"%PDF" + b"x" * 5000, mimetype="application/pdf")
        liar = slack.share_file("liar.bin", b"y" * 5000, mimetype="application/octet-stream", size=10)
        gone = slack.share_file("gone.txt", b"z")
        del slack.shared_files[gone["id"]]
        foreign = slack.share_file("steal.txt", b"s", url=f"{elsewhere.base_url}/steal")
        tricky = slack.share_file("tricky.txt", b"t", url=f"http://127.0.0.1:{slack.port}@127.0.0.1:{elsewhere.port}/t")
        small = slack.share_file("small.txt", b"fits\n")
        model.script([shell("ls -A /workspace/.slack-files"), text("Worked with what I had.")])
        async with Bot(settings, port=0):
            payload = slack.file_event("C1", "U1", "look at these", [big, liar, gone, foreign, tricky, small],
                                       mention=True)
            await deliver(slack, payload)
            ts = payload["event"]["ts"]
            final = await wait_final(slack, "C1", ts)
            await slack.wait_for(lambda: len(notices(slack, "C1", ts)) == 5, timeout=20)
    finally:
        await elsewhere.stop()
    assert "Worked with what I had." in block_text(final)
    said = "\n".join(notices(slack, "C1", ts))
    assert "I could not take report.pdf: it is 4.9 KB; the limit is 1 KB (SLACKBOT_ATTACHMENT_MAX)" in said
    assert "I could not take liar.bin: it is " in said  # counted as it arrived: the declared 10 bytes lied
    assert "I could not take gone.txt: Slack has no such file any more (404)" in said
    assert "I could not take steal.txt: its address is not on Slack's file host" in said
    assert "I could not take tricky.txt: its address carries a user name" in said
    assert elsewhere.requests == []  # never fetched, so never given the token
    assert not any("report.pdf" in r["path"] for r in slack.file_requests)  # its declared size was enough
    assert tool_outputs(model.requests[1].body)[-1].split() == ["small.txt"]
    request = as_text(user_contents(model.requests[0].body)[-1])
    assert "- small.txt (5 bytes, text/plain)" in request and "report.pdf" not in request


@docker
async def test_hostile_names_land_sanitised_inside_slack_files(slack, model, bot):
    names = ["../../etc/passwd", "/tmp/passwd", ".bashrc", "evil\nname.txt", "..", "-rf", "\u202ecod.exe"]
    files = [slack.share_file(n, f"content {i}\n".encode()) for i, n in enumerate(names)]
    model.script([shell("cd /workspace && find . -path ./.git -prune -o -type f -print | sort; "
                        "cat .slack-files/passwd-2"), text("Listed.")])
    payload = slack.file_event("C1", "U1", "check the names", files, mention=True)
    await deliver(slack, payload)
    await wait_final(slack, "C1", payload["event"]["ts"])
    out = tool_outputs(model.requests[1].body)[-1]
    placed = sorted(line for line in out.splitlines() if line.startswith("./"))
    expected = ["passwd", "passwd-2", "bashrc", "evil name.txt", f"file-{files[4]['id']}", "rf", "cod.exe"]
    assert placed == sorted(f"./.slack-files/{n}" for n in expected), out  # nothing outside the folder
    assert "content 1" in out
    request = as_text(user_contents(model.requests[0].body)[-1])
    assert "\u202e" not in request and "evil\nname" not in request and "../" not in request


@docker
async def test_a_reply_with_a_file_reaches_the_running_task(slack, model, bot):
    model.script([shell("sleep 3; echo slept"), shell("cat /workspace/.slack-files/later.txt"), text("Used it.")])
    ts = await mention(slack, "start, I will send a file")
    await model.wait_for_requests(1)
    later = slack.share_file("later.txt", b"sent while you worked\n")
    await deliver(slack, slack.file_event("C1", "U1", "here is the file", [later], thread_ts=ts))
    final = await wait_final(slack, "C1", ts)
    assert "Used it." in block_text(final)
    steer = as_text(user_contents(model.requests[1].body)[-1])
    assert steer.startswith("here is the file\n\nAttached files (in /workspace/.slack-files/):\n- later.txt (")
    assert "sent while you worked" in tool_outputs(model.requests[2].body)[-1]


@docker
async def test_links_the_agent_planted_never_redirect_the_write(slack, model, bot):
    # Task 1 plants a link where a file will be written; task 2 finds it replaced, not followed,
    # and plants a link in place of the folder; task 3's file is refused, nothing lands in home.
    model.script([shell("mkdir -p /workspace/.slack-files && echo mine > /home/agent/target && "
                        "ln -s /home/agent/target /workspace/.slack-files/notes.txt"), text("planted one")])
    ts = await mention(slack, "plant")
    await wait_final(slack, "C1", ts)

    model.script([shell("cat /home/agent/target; stat -c '%F' /workspace/.slack-files/notes.txt; "
                        "cat /workspace/.slack-files/notes.txt; rm -rf /workspace/.slack-files && "
                        "ln -s /home/agent /workspace/.slack-files"), text("planted two")])
    notes = slack.share_file("notes.txt", b"from slack\n")
    await deliver(slack, slack.file_event("C1", "U1", "read this", [notes], thread_ts=ts))
    await wait_final(slack, "C1", ts, count=2)
    out = tool_outputs(model.requests[-1].body)[-1]
    assert out.splitlines()[:3] == ["mine", "regular file", "from slack"], out

    model.script([shell("ls -A /home/agent; readlink /workspace/.slack-files"), text("checked")])
    pwned = slack.share_file("pwned.txt", b"redirected\n")
    await deliver(slack, slack.file_event("C1", "U1", "and this", [pwned], thread_ts=ts))
    await wait_final(slack, "C1", ts, count=3)
    out = tool_outputs(model.requests[-1].body)[-1]
    assert "pwned.txt" not in out and "/home/agent" in out, out
    said = "\n".join(notices(slack, "C1", ts))
    assert "I could not take pwned.txt: .slack-files in /workspace is not a folder" in said
    assert "pwned.txt" not in as_text(user_contents(model.requests[-2].body)[-1])


@docker
async def test_a_plan_phase_reads_files_in_tmp_and_the_approved_task_gets_them_in_the_workspace(slack, model, bot):
    from tests.slack_actions import press

    notes = slack.share_file("notes.txt", b"plan input\n")
    model.script([shell("cat /tmp/.slack-files/notes.txt; ls -A /workspace"), text("1. Use the notes.")])
    payload = slack.file_event("C1", "U1", "plan=on use the notes", [notes], mention=True)
    await deliver(slack, payload)
    ts = payload["event"]["ts"]
    await slack.wait_for(lambda: [m for m in bot_messages(slack, "C1", ts) if "plan_approve" in json.dumps(m)],
                         timeout=120)
    plan = [m for m in bot_messages(slack, "C1", ts) if "plan_approve" in json.dumps(m)][-1]
    request = as_text(user_contents(model.requests[0].body)[-1])
    assert "Attached files (in /tmp/.slack-files/):\n- notes.txt" in request, request
    out = tool_outputs(model.requests[1].body)[-1]
    assert "plan input" in out and ".slack-files" not in out  # read in /tmp; the workspace is read-only
    model.script([shell("cat /workspace/.slack-files/notes.txt"), text("Done with the notes.")])
    await press(slack, "plan_approve", "1", user="U1", channel="C1", message_ts=plan["ts"], thread_ts=ts)
    await slack.wait_for(lambda: any("Done with the notes." in block_text(m) for m in bot_messages(slack, "C1", ts)),
                         timeout=120)
    assert "plan input" in tool_outputs(model.requests[-1].body)[-1]
    assert not notices(slack, "C1", ts)
