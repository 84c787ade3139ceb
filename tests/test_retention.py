"""Retention (the saved `retention_days`): threads idle longer lose their events, patches and model
history; they keep a summary a follow-up starts from, and tasks keep their answers. SQLite and Postgres."""

from __future__ import annotations

from datetime import timedelta


from slackbot.agent.history import Row
from slackbot.protocol import TaskStatus
from slackbot.runs.context import _with_summary
from slackbot.store import Store
from slackbot.store.models import utcnow
from slackbot.store.retention import forget_before
from tests.test_store_db import store  # noqa: F401 (the fixture: a migrated store)


async def finished(store: Store, thread_ts: str, prompt: str, answer: str, days_ago: float, status: str = "done"):
    thread, task = await store.new_task(channel="C1", thread_ts=thread_ts, requester="U1", requester_name="U1",
                                        prompt=prompt, mention_ts=thread_ts, model="m")
    await store.transition(task.id, [TaskStatus.PENDING], status=status, answer=answer,
                           finished_at=utcnow() - timedelta(days=days_ago) if status == "done" else None)
    await store.add_event(task.id, {"type": "task.progress", "text": f"secret output of {prompt}"})
    await store.add_history(thread.id, task.id, {"role": "user", "content": prompt}, 5)
    await store.add_history(thread.id, task.id, {"role": "assistant", "content": answer}, 5)
    await store.set_patch(task.id, "diff --git a/x b/x")
    return thread, task


async def test_old_threads_lose_their_transcripts_and_keep_a_summary(store):
    old_thread, old = await finished(store, "1.0", "fix the login bug", "Fixed it in auth.py.", days_ago=40)
    _, old2 = await finished(store, "1.0", "and add a test", "Added test_login.", days_ago=35)
    new_thread, new = await finished(store, "2.0", "recent work", "Recent answer.", days_ago=2)
    busy_thread, busy = await finished(store, "3.0", "old but running", "", days_ago=40, status="running")

    assert await forget_before(store, utcnow() - timedelta(days=30)) == 1
    assert await forget_before(store, utcnow() - timedelta(days=30)) == 0  # nothing left to forget
    assert await store.events(old.id) == [] and await store.events(old2.id) == []
    assert await store.history(old_thread.id) == []
    assert await store.events(new.id) and await store.history(new_thread.id)  # younger than the cutoff
    assert await store.events(busy.id)  # a thread with a running task is never touched
    thread = await store.get_thread(old_thread.id)
    assert "fix the login bug" in thread.summary and "Added test_login." in thread.summary
    assert "secret output" not in thread.summary
    assert (await store.get_task(old.id)).answer == "Fixed it in auth.py."

    # A follow-up starts from the summary, then its own request.
    await store.add_history(old_thread.id, 99, {"role": "user", "content": "and now the docs"}, 5)
    rows = [Row(r.id, {"content": r.data}, r.tokens) for r in await store.history(old_thread.id)]
    seen = _with_summary(rows, thread.summary, thread.summary_upto)
    assert "[Summary of the earlier part" in seen[0].message["content"] and len(seen) == 2
    assert "and now the docs" in seen[1].message["content"]


async def test_the_workers_housekeeping_applies_the_saved_retention(store):
    from types import SimpleNamespace

    from slackbot.runs.guards import retention
    from slackbot.settings import Settings
    from slackbot.store import SavedSettings

    thread, task = await finished(store, "4.0", "old work", "Old answer.", days_ago=40)
    ctx = SimpleNamespace(store=store, settings=Settings())  # (what retention reads of a RunContext)
    await retention(ctx)  # SLACKBOT_RETENTION_DAYS=0: kept forever
    assert await store.events(task.id)
    await SavedSettings(store).save("retention_days", 30, by="UADMIN")  # from the settings modal
    await retention(ctx)
    assert await store.events(task.id) == [] and await store.history(thread.id) == []
