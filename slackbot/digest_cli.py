"""`slackbot digest --now [--channel ID]`: the daily digest posted at once (not once-a-day
guarded: the operator asked for it), for one channel or every channel with activity."""

from __future__ import annotations

import sys

from .settings import Settings


async def post_now(settings: Settings, channel: str = "") -> int:
    from .automations.digest_job import DigestJob
    from .slack.app import web_client
    from .slack.automation_surface import DigestPoster
    from .store import Store
    from .store.models import utcnow

    if not settings.slack_bot_token:
        print("SLACK_BOT_TOKEN is not set: the digest is posted to Slack.", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.db_url)
    client = web_client(settings)
    try:
        await store.upgrade()
        job = DigestJob(store, DigestPoster(client), settings)
        now = utcnow()
        channels = [channel] if channel else await job.all_channels(now)
        posted = 0
        for ch in channels:
            if await job.post(ch, now, once=False):
                posted += 1
                print(f"posted the digest in {ch}")
            else:
                print(f"{ch}: no activity in the last 24 hours, nothing posted")
        if not channels:
            print("No channel had activity in the last 24 hours: nothing posted.")
        return 0
    except Exception as exc:
        print(f"The digest could not be posted: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.aclose()
