"""The daily digest as data: what one channel's last 24 hours came to (tasks by outcome, what is
still running, automation runs, tokens and cost) and two weeks of history for the chart."""

from __future__ import annotations

import math

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..protocol import TaskStatus, Usage
from ..store.models import AgentThread, Automation, AutomationRun, Task
from ..store.reports import Reports, as_utc

WINDOW = timedelta(hours=24)
HISTORY_DAYS = 14
SUMMARY_LIMIT = 150
OUTCOMES = ("done", "failed", "stopped")  # the order of the digest's sections
PRICES_EXAMPLE = "gpt-5.5=1.25/0.125/10,small=0.25/0.025/2"


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens."""

    input: float
    cached: float
    output: float


@dataclass(frozen=True)
class DigestTask:
    task_id: int
    status: str  # a TaskStatus
    requester: str
    requester_name: str
    summary: str  # plain text from the answer, the error or the prompt: escape before showing
    repo: str  # the repository's short name; "" for a scratch workspace
    branch: str
    pr_url: str
    thread_ts: str
    duration_s: float | None  # running tasks: so far
    tokens: Usage
    model: str
    cost: float | None  # None: the model has no price
    automation: str = ""  # the automation that started it

    @property
    def outcome(self) -> str:
        return outcome(self.status)


@dataclass(frozen=True)
class DigestRun:
    name: str
    number: int
    status: str  # the task's status, or "—" when no task started
    nothing_to_report: bool = False
    task_id: int | None = None
    error: str = ""  # why no task started


@dataclass(frozen=True)
class Totals:
    counts: dict[str, int]  # per outcome (done/failed/stopped), and running and queued
    tokens: Usage
    cost: float  # the sum of the known costs
    cost_partial: bool  # some task's model has no price

    @property
    def finished(self) -> int:
        return sum(self.counts.get(o, 0) for o in OUTCOMES)


@dataclass(frozen=True)
class Digest:
    channel: str
    day: date  # the local day the window ends in
    tz: ZoneInfo
    since: datetime
    until: datetime
    finished: list[DigestTask]  # done, then failed (interrupted too), then stopped; each in end order
    running: list[DigestTask]
    automation_runs: list[DigestRun]
    totals: Totals
    history: dict[date, dict[str, int]]  # the last 14 local days, per outcome
    priced: bool = False  # prices are configured: an unknown one shows as "—"
    quiet: int = 0  # automation tasks with nothing to report: counted in tokens and cost, not listed
    post_to: str = ""  # the channel it goes to, when not its own (a saved digest channel)


def outcome(status: str) -> str:
    """done, failed or stopped for a final status (an interrupted task, cut by a restart, failed to
    finish); other statuses as they are."""
    return "failed" if status == TaskStatus.INTERRUPTED else status


def parse_prices(text: str) -> dict[str, Price]:
    """SLACKBOT_PRICES: `model=input/cached/output,...` in US dollars per million tokens."""
    prices: dict[str, Price] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        model, _, numbers = part.partition("=")
        values = numbers.split("/")
        try:
            floats = [float(v) for v in values]
        except ValueError:
            floats = []
        if not model.strip() or len(floats) != 3 or any(not math.isfinite(v) or v < 0 for v in floats):
            raise ValueError(f"SLACKBOT_PRICES: {part!r} is not model=input/cached/output "
                             f"(US$ per million tokens), e.g. {PRICES_EXAMPLE}")
        prices[model.strip()] = Price(*floats)
    return prices


def cost(model: str, input: int, cached: int, output: int, prices: dict[str, Price]) -> float | None:
    """US dollars; None when the model has no price. Cached input is part of `input` (OpenAI's count)."""
    price = prices.get(model)
    if price is None:
        return None
    uncached = max(0, input - cached)
    return (uncached * price.input + cached * price.cached + output * price.output) / 1_000_000


async def gather(reports: Reports, channel: str, *, until: datetime, tz: ZoneInfo,
                 prices: dict[str, Price]) -> Digest | None:
    """The digest of the 24 hours ending at `until`; None when nothing finished and nothing runs."""
    until = as_utc(until)
    since = until - WINDOW
    finished = await reports.finished(channel, since, until)
    active = await reports.active(channel)
    if not finished and not active:
        return None
    runs = await reports.automation_runs(channel, since, until)
    names = {a.id: a.name for _r, a, _t in runs if a.id is not None}
    missing = {i for t, _ in finished + active if (i := t.automation_id) and i not in names}
    names |= await reports.automation_names(missing)

    def item(task: Task, thread: AgentThread) -> DigestTask:
        return _digest_task(task, thread, until, prices, names.get(task.automation_id or 0, ""))

    tasks = [(t, item(t, th)) for t, th in finished]
    listed = [d for t, d in tasks if not t.nothing_to_report]
    listed.sort(key=lambda d: OUTCOMES.index(d.outcome))  # stable: end order within an outcome
    running = [item(t, th) for t, th in active]
    day = (until - timedelta(microseconds=1)).astimezone(tz).date()
    days = [day - timedelta(days=n) for n in range(HISTORY_DAYS - 1, -1, -1)]
    history = {d: _by_outcome(c) for d, c in (await reports.daily_outcomes(channel, days, tz)).items()}
    costs = [d.cost for _t, d in tasks]
    counts = {o: sum(1 for d in listed + running if d.outcome == o) for o in (*OUTCOMES, "running", "queued")}
    totals = Totals(counts=counts, tokens=sum((d.tokens for _t, d in tasks), Usage()),
                    cost=sum(c for c in costs if c is not None), cost_partial=None in costs)
    return Digest(channel=channel, day=day, tz=tz, since=since, until=until, finished=listed, running=running,
                  automation_runs=[_run(r, a, t) for r, a, t in runs], totals=totals, history=history,
                  priced=bool(prices), quiet=len(tasks) - len(listed))


async def gather_all(reports: Reports, *, until: datetime, tz: ZoneInfo, prices: dict[str, Price]) -> list[Digest]:
    """A digest for every channel that had something to report, in channel order."""
    until = as_utc(until)
    digests = []
    for channel in await reports.channels_with_activity(until - WINDOW, until):
        digest = await gather(reports, channel, until=until, tz=tz, prices=prices)
        if digest is not None:
            digests.append(digest)
    return digests


def summary(task: Task) -> str:
    """One line: the error for a failure, else the answer's first line; the prompt when empty."""
    failed = task.status in (TaskStatus.FAILED, TaskStatus.INTERRUPTED)
    for text in ((task.error, task.answer, task.prompt) if failed else (task.answer, task.prompt)):
        line = next((s for s in (_plain(raw) for raw in text.splitlines()) if s), "")
        if line:
            return line if len(line) <= SUMMARY_LIMIT else line[: SUMMARY_LIMIT - 1] + "…"
    return ""


def repo_name(url: str) -> str:
    """`https://github.com/acme/api.git` → `api`; `git@host:acme/api` → `api`."""
    last = re.split(r"[/:]", url.rstrip("/"))[-1] if url else ""
    return last.removesuffix(".git")


def _plain(line: str) -> str:
    """A markdown line without its heading, quote or bullet marker and bold markers."""
    return re.sub(r"^\s*(#{1,6}\s+|>\s*|[-*+]\s+)", "", line).replace("**", "").strip()


def _digest_task(task: Task, thread: AgentThread, until: datetime, prices: dict[str, Price],
                 automation: str) -> DigestTask:
    assert task.id is not None  # read from the database
    end = task.finished_at or (until if task.status == TaskStatus.RUNNING else None)
    duration = (as_utc(end) - as_utc(task.started_at)).total_seconds() if end and task.started_at else None
    tokens = Usage(task.input_tokens, task.cached_input_tokens, task.output_tokens)
    return DigestTask(
        task_id=task.id, status=task.status, requester=task.requester, requester_name=task.requester_name,
        summary=summary(task), repo=repo_name(thread.repo_url), branch=thread.branch, pr_url=thread.pr_url,
        thread_ts=thread.thread_ts, duration_s=None if duration is None else max(0.0, duration), tokens=tokens,
        model=task.model, automation=automation,
        cost=cost(task.model, task.input_tokens, task.cached_input_tokens, task.output_tokens, prices))


def _run(run: AutomationRun, automation: Automation, task: Task | None) -> DigestRun:
    return DigestRun(name=automation.name, number=run.number, status=task.status if task else "—",
                     nothing_to_report=bool(task and task.nothing_to_report), task_id=run.task_id,
                     error=run.error)


def _by_outcome(counts: dict[str, int]) -> dict[str, int]:
    folded = {o: 0 for o in OUTCOMES}
    for status, n in counts.items():
        folded[outcome(status)] += n
    return folded
