"""The daily digest: its data from the store (SQLite and PostgreSQL), the chart and the Slack blocks.
Fixed times throughout: the digest's window ends at 17:00 in Paris on Sunday 1 December 2024."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from slack_sdk.models.blocks import Block
from sqlmodel import Session

from slackbot.automations.chart import chart_png
from slackbot.automations.digest import (
    Digest, DigestRun, DigestTask, Price, Totals, cost, gather, gather_all, parse_prices, repo_name,
)
from slackbot.protocol import Usage
from slackbot.slack.digest_view import digest_blocks
from slackbot.store import Store
from slackbot.store.models import AgentThread, Automation, AutomationRun, Task
from slackbot.store.reports import Reports

PARIS = ZoneInfo("Europe/Paris")
UNTIL = datetime(2024, 12, 1, 17, 0, tzinfo=PARIS)  # 16:00 UTC; the window starts 30 Nov 16:00 UTC
PRICES = parse_prices("gpt-5.5=1.25/0.125/10")
HOSTILE = "<!channel> <https://evil|click>"


def utc(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, second, tzinfo=timezone.utc)


@pytest.fixture
async def reports(db_url):
    store = Store(db_url)
    await store.upgrade()
    await store.run(seed)
    yield Reports(store)
    await store.aclose()


def seed(s: Session) -> None:
    def task(channel: str, ts: str, status: str, *, finished: datetime | None = None, thread: dict | None = None,
             **fields) -> Task:
        row = AgentThread(channel=channel, thread_ts=ts, **(thread or {}))
        s.add(row)
        s.flush()
        started = fields.pop("started", finished - timedelta(minutes=1) if finished else None)
        made = Task(thread_id=row.id, channel=channel, requester=fields.pop("requester", "U1"), status=status,
                    prompt=fields.pop("prompt", "do it"), model=fields.pop("model", "gpt-5.5"),
                    started_at=started, finished_at=finished, **fields)
        s.add(made)
        s.flush()
        return made

    repo = dict(repo_url="https://github.com/acme/api.git", branch="slackbot/fix-login",
                pr_url="https://github.com/acme/api/pull/7")
    task("C1", "1.1", "done", thread=repo, started=utc(12, 1, 9), finished=utc(12, 1, 9, 4, 12),
         answer="## Fixed the login bug\nDetails follow.", input_tokens=100_000, cached_input_tokens=20_000,
         output_tokens=5_000)
    task("C1", "1.2", "failed", finished=utc(12, 1, 10), error="tests failed: 3 errors\ntrace…", model="mystery",
         input_tokens=1_000, output_tokens=100, requester="U2")
    task("C1", "1.3", "stopped", finished=utc(12, 1, 11), prompt="refactor the parser")
    task("C1", "1.4", "interrupted", finished=utc(11, 30, 16), prompt="upgrade deps")  # the window's first instant
    task("C1", "1.5", "running", started=utc(12, 1, 15, 30), prompt="write the docs")
    task("C1", "1.6", "queued", prompt="then the changelog")
    task("C1", "1.7", "done", finished=utc(12, 1, 12), pinned="exec-1", answer="terminal work")
    task("C1", "1.8", "done", finished=utc(11, 30, 15))  # before the window: history only
    task("C1", "1.9", "done", finished=utc(11, 28, 10))
    task("C1", "1.10", "done", finished=utc(12, 1, 16))  # the window's end: not in it
    task("C1", "1.11", "done", finished=utc(12, 1, 13), answer=HOSTILE, requester="U3")
    task("C1", "1.12", "done", finished=utc(11, 27, 10), pinned="exec-1")
    automation = Automation(name="nightly-deps", prompt="check deps", channel="C1", creator="U1", trigger="schedule")
    s.add(automation)
    s.flush()
    run_task = task("C1", "1.13", "done", finished=utc(12, 1, 2, 5), automation_id=automation.id,
                    nothing_to_report=True, answer="Nothing new.", input_tokens=2_000, output_tokens=200)
    s.add(AutomationRun(automation_id=automation.id, fire_key="k12", number=12, task_id=run_task.id, channel="C1",
                        thread_ts="1.13", created_at=utc(12, 1, 2)))
    s.add(AutomationRun(automation_id=automation.id, fire_key="k13", number=13, channel="", error="no repository",
                        created_at=utc(12, 1, 3)))
    task("C2", "2.1", "done", finished=utc(11, 29, 10))  # an idle channel today
    task("C3", "3.1", "done", finished=utc(12, 1, 10), pinned="exec-2")  # only terminal tasks
    task("C3", "3.2", "running", started=utc(12, 1, 15), pinned="exec-2")
    s.commit()


async def test_gather_tells_a_channels_day(reports):
    d = await gather(reports, "C1", until=UNTIL, tz=PARIS, prices=PRICES)
    assert d is not None and d.day == date(2024, 12, 1)
    assert (d.since, d.until) == (utc(11, 30, 16), utc(12, 1, 16))
    # Done, then failed (interrupted too), then stopped; each in end order. Exec tasks never.
    assert [(t.thread_ts, t.status) for t in d.finished] == [
        ("1.1", "done"), ("1.11", "done"), ("1.4", "interrupted"), ("1.2", "failed"), ("1.3", "stopped")]
    first = d.finished[0]
    assert (first.summary, first.repo, first.branch, first.pr_url) == (
        "Fixed the login bug", "api", "slackbot/fix-login", "https://github.com/acme/api/pull/7")
    assert first.duration_s == 252 and first.tokens == Usage(100_000, 20_000, 5_000)
    assert first.cost == pytest.approx((80_000 * 1.25 + 20_000 * 0.125 + 5_000 * 10) / 1e6)
    failed = d.finished[3]
    assert (failed.summary, failed.repo, failed.requester, failed.cost) == ("tests failed: 3 errors", "", "U2", None)
    assert [t.summary for t in d.finished[2:5:2]] == ["upgrade deps", "refactor the parser"]  # prompts as fallback
    assert [(t.thread_ts, t.status, t.duration_s) for t in d.running] == [
        ("1.5", "running", 1800), ("1.6", "queued", None)]
    assert d.automation_runs == [
        DigestRun("nightly-deps", 12, "done", nothing_to_report=True, task_id=d.automation_runs[0].task_id),
        DigestRun("nightly-deps", 13, "—", error="no repository")]
    assert d.quiet == 1  # the run with nothing to report is not listed, but it cost tokens
    t = d.totals
    assert t.counts == {"done": 2, "failed": 2, "stopped": 1, "running": 1, "queued": 1}
    assert t.tokens == Usage(103_000, 20_000, 5_300)
    assert t.cost == pytest.approx(first.cost + (2_000 * 1.25 + 200 * 10) / 1e6) and t.cost_partial
    assert len(d.history) == 14 and min(d.history) == date(2024, 11, 18)
    assert d.history[date(2024, 12, 1)] == {"done": 4, "failed": 1, "stopped": 1}  # 1.10 ended 17:00 in Paris
    assert d.history[date(2024, 11, 30)] == {"done": 1, "failed": 1, "stopped": 0}
    assert d.history[date(2024, 11, 28)] == {"done": 1, "failed": 0, "stopped": 0}
    assert d.history[date(2024, 11, 27)] == {"done": 0, "failed": 0, "stopped": 0}  # exec


async def test_idle_channels_and_terminal_tasks_get_no_digest(reports):
    since = UNTIL - timedelta(hours=24)
    assert await reports.channels_with_activity(since, UNTIL) == ["C1"]
    assert await gather(reports, "C2", until=UNTIL, tz=PARIS, prices=PRICES) is None
    assert await gather(reports, "C3", until=UNTIL, tz=PARIS, prices=PRICES) is None
    digests = await gather_all(reports, until=UNTIL, tz=PARIS, prices=PRICES)
    assert [d.channel for d in digests] == ["C1"]
    shown = {t.thread_ts for t in digests[0].finished + digests[0].running}
    assert not shown & {"1.7", "1.12"}


async def test_the_gathered_digest_as_blocks(reports):
    d = await gather(reports, "C1", until=UNTIL, tz=PARIS, prices=PRICES)
    one = d.finished[0].task_id
    text, blocks = digest_blocks(d, {one: "https://acme.slack.com/archives/C1/p1"})
    validate(blocks)
    assert blocks[0]["text"]["text"] == "Daily digest — Sunday, 1 Dec"
    assert blocks[1]["elements"][0]["text"] == (
        "5 tasks · 2 done · 2 failed · 1 stopped · 1 running · 1 queued · 1 with nothing to report · 108k tokens"
        " · ~$0.16 (some models unpriced)")
    assert text.startswith("Daily digest — Sunday, 1 Dec: 5 tasks")
    body = "\n".join(b["text"]["text"] for b in blocks[2:])
    assert f"<https://acme.slack.com/archives/C1/p1|#{one}> (acme.slack.com) <@U1>: Fixed the login bug" in body
    assert "<https://github.com/acme/api/pull/7|pull request> (github.com) · 4m 12s · 105k tokens · $0.15" in body
    assert "<@U2>: tests failed: 3 errors · 1m 0s · 1.1k tokens · —" in body
    assert "⏱ nightly-deps — run #12: nothing to report" in body
    assert "⏱ nightly-deps — run #13: did not start: no repository" in body
    assert "*Still running (2)*" in body and "write the docs · 30m 0s" in body
    assert "<!channel>" not in body and "<https://evil" not in body
    assert "&lt;!channel&gt; &lt;https://evil|click&gt;" in body


def test_prices_and_costs():
    assert parse_prices(" a=1/0.5/2 , b=0/0/0,") == {"a": Price(1, 0.5, 2), "b": Price(0, 0, 0)}
    assert parse_prices("") == {}
    for bad in ("a=1/2", "a", "=1/2/3", "a=x/1/2", "a=-1/0/0"):
        with pytest.raises(ValueError, match="e.g. gpt-5.5="):
            parse_prices(bad)
    prices = {"a": Price(2, 1, 10)}
    assert cost("a", 1_000_000, 400_000, 100_000, prices) == pytest.approx(0.6 * 2 + 0.4 * 1 + 0.1 * 10)
    assert cost("b", 1, 0, 1, prices) is None
    assert [repo_name(u) for u in ("https://github.com/acme/api.git", "git@host:acme/web", "/srv/x/", "")] == [
        "api", "web", "x", ""]


def test_the_chart_needs_two_days():
    days = [date(2024, 11, 18) + timedelta(days=n) for n in range(14)]
    history = {d: {"done": 0, "failed": 0, "stopped": 0} for d in days}
    assert chart_png(history) is None
    history[days[-1]] = {"done": 3, "failed": 1, "stopped": 0}
    assert chart_png(history) is None
    history[days[2]] = {"done": 1, "failed": 0, "stopped": 2}
    png = chart_png(history)
    assert png is not None and png.startswith(b"\x89PNG")


def test_a_hostile_summary_and_names_are_shown_as_text():
    task = item(1, summary=HOSTILE, branch="<!here>", repo="<@U9>", automation="<!everyone>")
    run = DigestRun("<!channel>", 3, "failed")
    _text, blocks = digest_blocks(digest([task], runs=[run]))
    validate(blocks)
    body = "\n".join(b["text"]["text"] for b in blocks[2:])
    assert "<!" not in body and "<https://evil" not in body and "<@U9>" not in body
    assert "&lt;!channel&gt; &lt;https://evil|click&gt;" in body


def test_many_tasks_keep_within_slacks_limits():
    tasks = [item(i, status=("done", "failed", "stopped")[i % 3], summary="x" * 110 + "&<>" * 13,
                  branch="<" * 400 * (i % 2))  # escaped, the longest lines are cut to fit
             for i in range(70)]
    running = [item(100 + i, status="running") for i in range(20)]
    links = {i: f"https://acme.slack.com/p{i}" for i in range(70)}
    _text, blocks = digest_blocks(digest(tasks, running=running), links)
    validate(blocks)
    assert len(blocks) <= 50
    body = "\n".join(b["text"]["text"] for b in blocks[2:])
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks[2:])
    assert "…and 9 more" in body  # 24 done, 15 listed
    assert "…and 5 more" in body  # 20 running


# ---- helpers -------------------------------------------------------------------------------

def validate(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for b in blocks:
        Block.parse(b).validate_json()


def item(task_id: int, *, status: str = "done", summary: str = "did it", **fields) -> DigestTask:
    values = dict(requester="U1", requester_name="Ann", repo="api", branch="b", pr_url="", thread_ts="1.0",
                  duration_s=61.0, tokens=Usage(1200, 0, 30), model="m", cost=0.01) | fields
    return DigestTask(task_id=task_id, status=status, summary=summary, **values)


def digest(finished: list[DigestTask], *, running: list[DigestTask] = (), runs: list[DigestRun] = ()) -> Digest:
    counts = {o: sum(1 for t in finished if t.outcome == o) for o in ("done", "failed", "stopped")}
    return Digest(channel="C1", day=date(2024, 12, 1), tz=PARIS, since=UNTIL - timedelta(hours=24), until=UNTIL,
                  finished=finished, running=list(running), automation_runs=list(runs),
                  totals=Totals(counts | {"running": len(running)}, Usage(), 0.0, False), history={}, priced=True)
