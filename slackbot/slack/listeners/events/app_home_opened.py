"""The Home tab. (Its full view arrives with the App Home work; until then a short guide.)"""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...home import publish_home


def handler(deps: Deps):
    async def app_home_opened(event: dict[str, Any]) -> None:
        if event.get("tab") == "home":
            await publish_home(deps, event["user"])
    return app_home_opened
