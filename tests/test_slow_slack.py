"""A slow Slack never delays the agent: every Slack call takes 2 s here, yet the model is asked
again as soon as each command has run (the events go to the database; Slack reads them from
there at its own pace)."""

from __future__ import annotations

import pytest

from tests.fakes import shell, text
from tests.helpers import block_text, mention, wait_final

pytestmark = pytest.mark.docker
SLOW = ("chat.update", "chat.postMessage", "views.publish", "reactions.add", "files.getUploadURLExternal",
        "files.completeUploadExternal")


async def test_a_slow_slack_does_not_delay_the_next_model_call(slack, model, bot):
    model.script([shell(f"echo step {n}") for n in range(6)] + [text("All six steps ran.")])
    ts = await mention(slack, "run six quick steps")
    await model.wait_for_requests(1, timeout=60)
    for method in SLOW:
        slack.set_delay(method, 2.0)
    await model.wait_for_requests(7, timeout=60)
    gaps = [b.time - a.time for a, b in zip(model.requests[1:], model.requests[2:])]
    assert max(gaps) < 1.5, f"the agent waited for Slack between model calls: {gaps}"
    final = await wait_final(slack, "C1", ts, timeout=120)
    assert "All six steps ran." in block_text(final)
