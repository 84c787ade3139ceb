"""Work the bot starts by itself: automations (schedules, channel watches, webhooks) and the daily
digest. Depends on runs, store and protocol; the Slack layer reaches it through `Surface`."""
