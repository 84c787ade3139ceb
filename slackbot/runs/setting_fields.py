"""The settings admins may save in Slack: each names a field of `Settings` (whose environment variable
stays the default), where it may be set, and how the settings modal asks for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Scope = Literal["workspace", "channel"]  # channel: a workspace value a channel may override
Widget = Literal["text", "number", "switch", "choice", "users", "channels", "lines"]


@dataclass(frozen=True)
class SettingField:
    key: str  # the Settings field, and the saved row's key
    label: str
    scope: Scope
    widget: Widget
    hint: str = ""
    choices: tuple[str, ...] = ()
    unit: str = ""  # how the modal shows a number ("minutes": stored in seconds)


FIELDS: tuple[SettingField, ...] = (
    SettingField("model", "Default model", "channel", "text", "Used when a mention names no model=."),
    SettingField("models", "Models people may pick", "channel", "text",
                 "Comma-separated; model= accepts these and the default model."),
    SettingField("reasoning_effort", "Reasoning effort", "workspace", "choice",
                 "For models that take it; empty: the model's default.", ("", "minimal", "low", "medium", "high")),
    SettingField("task_timeout_s", "Longest task", "workspace", "number", "Minutes.", unit="minutes"),
    SettingField("max_steps", "Most model calls per task", "workspace", "number"),
    SettingField("sandbox_cpus", "Sandbox CPUs", "workspace", "number", "CPUs per task container, e.g. 2 or 0.5."),
    SettingField("sandbox_memory", "Sandbox memory", "workspace", "text", "Per task container, e.g. 2g or 512m."),
    SettingField("network_limit", "Network at most", "channel", "choice",
                 "The most network a task gets; a repository's own network= applies below it (the stricter holds).",
                 ("off", "setup", "on")),
    SettingField("egress_allow", "Allowed destinations", "workspace", "lines",
                 "Hosts, *.domains, host:port or CIDRs, one per line; empty: this machine's package mirrors."),
    SettingField("auto_push", "Push and open a PR when done", "channel", "choice",
                 "repository: as each repository's auto_push says.", ("repository", "on", "off")),
    SettingField("plan_mode", "Plan first, then edit", "channel", "switch",
                 "Tasks post a plan for approval before they edit."),
    SettingField("reply_needs_mention", "Replies need a mention", "channel", "switch",
                 "Thread replies reach the agent only when they mention the bot."),
    SettingField("language", "Answer language", "channel", "text", "Empty: the language of the request."),
    SettingField("digest_time", "Digest time", "channel", "text", "HH:MM (24-hour); empty: no digest."),
    SettingField("digest_channel", "Digest channel", "channel", "channels", "Empty: each channel gets its own."),
    SettingField("timezone", "Time zone", "channel", "text", "For the digest and schedules, e.g. Europe/Berlin."),
    SettingField("admins", "More admins", "workspace", "users",
                 "Besides SLACKBOT_ADMINS and Slack's workspace admins and owners."),
    SettingField("starters", "Who may start tasks", "workspace", "text",
                 "User ids (U…) and user group ids (S…), comma-separated; empty: everyone."),
    SettingField("task_channels", "Where tasks may start", "workspace", "channels", "Empty: every channel I am in."),
    SettingField("allow_guests", "Guests may start tasks", "workspace", "switch"),
    SettingField("allow_external", "People from other organisations may start tasks", "workspace", "switch",
                 "Slack Connect."),
    SettingField("retention_days", "Keep transcripts (days)", "workspace", "number",
                 "Older events are deleted; threads keep their summary. 0: forever."),
    SettingField("prices", "Model prices", "workspace", "text",
                 "USD per million tokens, input/cached/output: gpt-5.5=1.25/0.125/10,small=0.25/0.025/2"),
)
BY_KEY = {f.key: f for f in FIELDS}
# Saved before the modal existed (issue 7), still honoured.
LEGACY = ("command_timeout_s",)
