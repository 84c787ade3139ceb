"""The Home tab. (Its full view arrives with the App Home work; until then a short guide.)"""

from __future__ import annotations

from typing import Any

from ...deps import Deps
from ...home import publish_home


def handler(deps: Deps):
    async def app_home_opened(event: dict[str, Any]) -> None:
        user = event.get("user")
        if event.get("tab") == "home" and isinstance(user, str) and user:
            await publish_home(deps, user)
    return app_home_opened
