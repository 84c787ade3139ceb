"""Web API method handlers of FakeSlack (a mixin: `self` is the FakeSlack).

Each handler takes the request params and returns the answer without "ok"; raising SlackError
answers ok:false with that error code, as Slack does (HTTP 200).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Awaitable, Callable

from .slack_blocks import check_message, check_view

METHODS: dict[str, Callable[[Any, dict], Awaitable[dict]]] = {}


def method(name: str):
    def register(fn):
        METHODS[name] = fn
        return fn

    return register


class SlackError(Exception):
    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code = code
        self.extra = extra


def _need(params: dict, *names: str) -> None:
    for n in names:
        if params.get(n) in (None, ""):
            raise SlackError("invalid_arguments", response_metadata={"messages": [f"missing {n}"]})


def _public(msg: dict) -> dict:
    """A message as Slack would return it (without our test-only bookkeeping)."""
    out = {k: v for k, v in msg.items() if k not in ("edits", "channel")}
    return copy.deepcopy(out)


class SlackMethods:
    METHODS = METHODS

    def _validate_message(self, method: str, params: dict) -> None:
        bad = check_message(params.get("text"), params.get("blocks"))
        if bad:
            code, problems = bad
            self.block_errors.append(f"{method}: {'; '.join(problems)}")
            raise SlackError(code)

    def _validate_view(self, method: str, view: Any) -> None:
        bad = check_view(view)
        if bad:
            code, problems = bad
            self.block_errors.append(f"{method}: {'; '.join(problems)}")
            raise SlackError(code)

    def _find(self, channel: str, ts: str) -> dict:
        msg = self.messages.get(channel, {}).get(str(ts))
        if msg is None:
            raise SlackError("message_not_found")
        return msg

    def store_message(self, channel: str, **fields: Any) -> dict:
        ts = self.next_ts()
        msg = {"type": "message", "ts": ts, "channel": channel, "text": "", "edits": [], **fields}
        if not msg.get("thread_ts") or msg.get("thread_ts") == ts:
            msg.pop("thread_ts", None)
        else:
            root = self.messages[channel].get(msg["thread_ts"])
            if root is not None:
                root["reply_count"] = root.get("reply_count", 0) + 1
                root.setdefault("thread_ts", root["ts"])
        self.messages[channel][ts] = msg
        return msg

    # ---- auth / chat -----------------------------------------------------------------------

    @method("auth.test")
    async def _auth_test(self, params: dict) -> dict:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "Fake Team",
            "user": "slackbot",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
            **({"enterprise_id": self.enterprise_id} if self.enterprise_id else {}),
        }

    @method("chat.postMessage")
    async def _post_message(self, params: dict) -> dict:
        _need(params, "channel")
        if not params.get("text") and not params.get("blocks") and not params.get("attachments"):
            raise SlackError("no_text")
        self._validate_message("chat.postMessage", params)
        channel = str(params["channel"])
        # Slack accepts a thread_ts it cannot find (the reply still carries it), so do we.
        thread_ts = params.get("thread_ts") or None
        fields = {
            "text": params.get("text") or "",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
        }
        if params.get("blocks") is not None:
            fields["blocks"] = params["blocks"]
        if params.get("attachments") is not None:
            fields["attachments"] = params["attachments"]
        if params.get("metadata") is not None:
            fields["metadata"] = params["metadata"]
        msg = self.store_message(channel, thread_ts=str(thread_ts) if thread_ts else None, **fields)
        return {"channel": channel, "ts": msg["ts"], "message": _public(msg)}

    @method("chat.update")
    async def _update(self, params: dict) -> dict:
        _need(params, "channel", "ts")
        self._validate_message("chat.update", params)
        msg = self._find(str(params["channel"]), str(params["ts"]))
        if msg.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        if "text" in params:
            msg["text"] = params.get("text") or ""
        if "blocks" in params:
            msg["blocks"] = params["blocks"]
        msg["edited"] = {"user": self.bot_user_id, "ts": self.next_ts()}
        # Each entry is the message as it looked right after that edit.
        msg["edits"].append({"text": msg.get("text"), "blocks": msg.get("blocks"), "time": time.monotonic()})
        return {"channel": msg["channel"], "ts": msg["ts"], "text": msg["text"], "message": _public(msg)}

    @method("chat.postEphemeral")
    async def _post_ephemeral(self, params: dict) -> dict:
        _need(params, "channel", "user")
        if not params.get("text") and not params.get("blocks"):
            raise SlackError("no_text")
        record = self.channel_record(str(params["channel"]))
        if not record["is_member"]:
            raise SlackError("channel_not_found")
        if "members" in record and params["user"] not in record["members"]:
            raise SlackError("user_not_in_channel")
        self._validate_message("chat.postEphemeral", params)
        ts = self.next_ts()
        self.ephemerals.append(
            {
                "channel": str(params["channel"]),
                "user": params["user"],
                "text": params.get("text") or "",
                "blocks": params.get("blocks"),
                "thread_ts": params.get("thread_ts"),
                "ts": ts,
            }
        )
        return {"message_ts": ts}

    @method("chat.delete")
    async def _delete(self, params: dict) -> dict:
        _need(params, "channel", "ts")
        channel, ts = str(params["channel"]), str(params["ts"])
        self._find(channel, ts)
        del self.messages[channel][ts]
        return {"channel": channel, "ts": ts}

    @method("chat.getPermalink")
    async def _permalink(self, params: dict) -> dict:
        _need(params, "channel", "message_ts")
        channel = str(params["channel"])
        msg = self._find(channel, str(params["message_ts"]))
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{msg['ts'].replace('.', '')}"
        if msg.get("thread_ts") and msg["thread_ts"] != msg["ts"]:
            link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": link}

    # ---- reactions -------------------------------------------------------------------------

    @method("reactions.add")
    async def _reaction_add(self, params: dict) -> dict:
        _need(params, "channel", "timestamp", "name")
        msg = self._find(str(params["channel"]), str(params["timestamp"]))
        name = str(params["name"]).strip(":")
        reactions = msg.setdefault("reactions", [])
        for r in reactions:
            if r["name"] == name:
                if self.bot_user_id in r["users"]:
                    raise SlackError("already_reacted")
                r["users"].append(self.bot_user_id)
                r["count"] += 1
                return {}
        reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {}

    @method("reactions.remove")
    async def _reaction_remove(self, params: dict) -> dict:
        _need(params, "name")
        msg = self._find(str(params.get("channel")), str(params.get("timestamp")))
        name = str(params["name"]).strip(":")
        for r in msg.get("reactions", []):
            if r["name"] == name and self.bot_user_id in r["users"]:
                r["users"].remove(self.bot_user_id)
                r["count"] -= 1
                if not r["users"]:
                    msg["reactions"].remove(r)
                return {}
        raise SlackError("no_reaction")

    # ---- views -----------------------------------------------------------------------------

    def _store_view(self, view: dict, **extra: Any) -> dict:
        stored = copy.deepcopy(view)
        stored.setdefault("id", self.next_id("V"))
        stored.update(team_id=self.team_id, app_id=self.app_id, hash=self.next_id("h"), **extra)
        self.views[stored["id"]] = stored
        return stored

    @method("views.publish")
    async def _views_publish(self, params: dict) -> dict:
        _need(params, "user_id", "view")
        self._validate_view("views.publish", params["view"])
        if params["view"].get("type") != "home":
            raise SlackError("invalid_arguments")
        old = self.home_views.get(params["user_id"])
        view = self._store_view({**params["view"], "id": old["id"]} if old else params["view"])
        self.home_views[params["user_id"]] = view
        return {"view": view}

    @method("views.open")
    async def _views_open(self, params: dict) -> dict:
        _need(params, "trigger_id", "view")
        self._use_trigger(str(params["trigger_id"]))
        self._validate_view("views.open", params["view"])
        view = self._store_view(params["view"])
        self.opened_views.append(view)
        return {"view": view}

    @method("views.update")
    async def _views_update(self, params: dict) -> dict:
        _need(params, "view")
        self._validate_view("views.update", params["view"])
        view_id = params.get("view_id")
        if view_id not in self.views:
            raise SlackError("not_found")
        view = self._store_view({**params["view"], "id": view_id})
        return {"view": view}

    def _use_trigger(self, trigger_id: str) -> None:
        # A trigger_id is valid for 3 s and only once.
        issued = self.triggers.get(trigger_id)
        if issued is None:
            raise SlackError("invalid_trigger_id")
        if issued == "used":
            raise SlackError("exchanged_trigger_id")
        self.triggers[trigger_id] = "used"
        if time.monotonic() - issued > 3:
            raise SlackError("expired_trigger_id")

    # ---- users / conversations -------------------------------------------------------------

    def user_info(self, uid: str) -> dict:
        extra = self.users.get(uid, {})
        name = extra.get("name") or uid.lower()
        real_name = extra.get("real_name") or f"User {uid}"
        display = extra.get("display_name") or name
        user = {
            "id": uid,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name,
            "tz": "UTC",
            "is_admin": False,
            "is_owner": False,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,  # is_stranger appears only on people of other organisations
            "is_bot": uid == self.bot_user_id,
            "is_app_user": False,
            "profile": {
                "email": extra.get("email") or f"{uid}@example.com",
                "real_name": real_name,
                "display_name": display,
                "real_name_normalized": real_name,
                "display_name_normalized": display,
            },
        }
        user.update({k: v for k, v in extra.items() if k not in ("email", "display_name")})
        return user

    @method("users.info")
    async def _users_info(self, params: dict) -> dict:
        _need(params, "user")
        return {"user": self.user_info(str(params["user"]))}

    @method("conversations.info")
    async def _conversations_info(self, params: dict) -> dict:
        _need(params, "channel")
        return {"channel": self.channel_record(str(params["channel"]))}

    def channel_record(self, cid: str) -> dict:
        """A channel as conversations.list returns it (the same defaults and overrides as .info)."""
        record = {
            "id": cid,
            "name": f"chan-{cid.lower()}",
            "is_channel": cid.startswith("C"),
            "is_group": cid.startswith("G"),
            "is_im": cid.startswith("D"),
            "is_private": not cid.startswith("C"),
            "is_member": True,
            "is_archived": False,
            "is_shared": False,
            "is_ext_shared": False,  # Slack Connect: shared with another organisation
            "is_org_shared": False,  # shared among the workspaces of one Enterprise Grid organisation
            "context_team_id": self.team_id,
            "created": 1700000000,
        }
        record.update(self.channels.get(cid, {}))
        record.setdefault("name_normalized", record["name"])
        return record

    # Members of a channel without a "members" override: the user ids tests use.
    DEFAULT_MEMBERS = ("U1", "U2", "U3", "U4", "U5", "U6", "U7", "U8", "U9", "UADMIN", "UGUEST")

    @method("conversations.members")
    async def _conversations_members(self, params: dict) -> dict:
        """The channel's `members` override (else DEFAULT_MEMBERS and the bot), in pages of `limit`."""
        _need(params, "channel")
        cid = str(params["channel"])
        record = self.channel_record(cid)
        if not record["is_member"]:
            raise SlackError("channel_not_found" if record["is_private"] else "not_in_channel")
        members = list(self.channels.get(cid, {}).get("members") or [*self.DEFAULT_MEMBERS, self.bot_user_id])
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        start = int(str(params.get("cursor") or "0").removeprefix("page:") or 0)
        more = start + limit < len(members)
        return {"members": members[start:start + limit],
                "response_metadata": {"next_cursor": f"page:{start + limit}" if more else ""}}

    @method("conversations.list")
    async def _conversations_list(self, params: dict) -> dict:
        """The channels of `self.channels`, in pages of `limit` (default 100) with an opaque cursor."""
        types = str(params.get("types") or "public_channel").split(",")
        wanted = []
        for cid in sorted(self.channels):
            record = self.channel_record(cid)
            kind = ("im" if record["is_im"] else "private_channel" if record["is_private"] else "public_channel")
            if kind not in types or (str(params.get("exclude_archived")).lower() in ("1", "true")
                                     and record["is_archived"]):
                continue
            wanted.append(record)
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        cursor = str(params.get("cursor") or "")
        try:
            start = int(cursor.removeprefix("page:")) if cursor else 0
        except ValueError:
            raise SlackError("invalid_cursor") from None
        page = wanted[start:start + limit]
        more = start + limit < len(wanted)
        return {"channels": page, "response_metadata": {"next_cursor": f"page:{start + limit}" if more else ""}}

    @method("conversations.replies")
    async def _replies(self, params: dict) -> dict:
        _need(params, "channel", "ts")
        channel, ts = str(params["channel"]), str(params["ts"])
        msg = self.messages.get(channel, {}).get(ts)
        if msg is None:
            raise SlackError("thread_not_found")
        root = msg.get("thread_ts") or msg["ts"]
        found = self.thread(channel, root)
        limit = int(params.get("limit") or 1000)
        return {"messages": [_public(m) for m in found[:limit]], "has_more": len(found) > limit}

    # ---- files -----------------------------------------------------------------------------

    @method("files.getUploadURLExternal")
    async def _get_upload_url(self, params: dict) -> dict:
        _need(params, "filename", "length")
        file_id = self.next_id("F")
        self.pending_uploads[file_id] = {"name": params["filename"], "length": int(params["length"]), "content": None}
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    @method("files.completeUploadExternal")
    async def _complete_upload(self, params: dict) -> dict:
        _need(params, "files")
        entries = params["files"]
        if not isinstance(entries, list) or not entries:
            raise SlackError("invalid_arguments")
        channel = params.get("channel_id") or None
        thread_ts = params.get("thread_ts") or None
        done = []
        for entry in entries:
            pending = self.pending_uploads.get(entry.get("id"))
            if pending is None or pending["content"] is None:
                raise SlackError("file_not_found" if pending is None else "file_upload_not_completed")
            done.append((entry, pending))
        files = []
        for entry, pending in done:
            del self.pending_uploads[entry["id"]]
            record = {
                "id": entry["id"],
                "name": pending["name"],
                "title": entry.get("title") or pending["name"],
                "content": pending["content"],
                "size": len(pending["content"]),
                "channel": channel,
                "thread_ts": thread_ts,
                "initial_comment": params.get("initial_comment"),
            }
            self.files.append(record)
            files.append({k: record[k] for k in ("id", "name", "title", "size")})
        if channel:
            self.store_message(
                str(channel),
                text=params.get("initial_comment") or "",
                user=self.bot_user_id,
                bot_id=self.bot_id,
                files=files,
                upload=True,
                thread_ts=str(thread_ts) if thread_ts else None,
            )
        return {"files": files}
