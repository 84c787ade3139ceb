"""User groups of FakeSlack (a mixin: `self` is the FakeSlack): `usergroups` maps a group id (S…)
to its members, as the workspace's admins set them; tests change it at any time."""

from __future__ import annotations

from .slack_methods import SlackError, _need, method


class SlackGroups:
    def _init_groups(self) -> None:
        self.usergroups: dict[str, list[str]] = {}
        self.disabled_groups: set[str] = set()

    @method("usergroups.users.list")
    async def _usergroups_users_list(self, params: dict) -> dict:
        """The members of a group; `no_such_subteam` for an unknown one, and for a disabled one
        unless `include_disabled` (as Slack answers)."""
        _need(params, "usergroup")
        group = str(params["usergroup"])
        include_disabled = str(params.get("include_disabled")).lower() in ("1", "true")
        if group not in self.usergroups or (group in self.disabled_groups and not include_disabled):
            raise SlackError("no_such_subteam")
        return {"users": list(self.usergroups[group])}
