"""The only reader of the environment. Build `Settings()` once at start and pass it in."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


NETWORK_ORDER = ("off", "setup", "on")  # strictest first


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", populate_by_name=True)

    # Slack
    slack_bot_token: str = Field("", alias="SLACK_BOT_TOKEN")
    slack_app_token: str = Field("", alias="SLACK_APP_TOKEN")
    slack_signing_secret: str = Field("", alias="SLACK_SIGNING_SECRET")
    slack_api_url: str = Field("https://slack.com/api/", alias="SLACK_API_URL")
    admins: str = Field("", alias="SLACKBOT_ADMINS", description="Comma-separated Slack user ids.")
    starters: str = Field("", alias="SLACKBOT_STARTERS", description=(
        "Who may start tasks: comma-separated user ids (U…) and user group ids (S…); empty: everyone."))
    task_channels: str = Field("", alias="SLACKBOT_TASK_CHANNELS",
                               description="Channels where tasks may start (ids); empty: every channel the bot is in.")
    allow_guests: bool = Field(False, alias="SLACKBOT_ALLOW_GUESTS",
                               description="Guest accounts may start tasks.")
    allow_external: bool = Field(False, alias="SLACKBOT_ALLOW_EXTERNAL",
                                 description="People from other organisations (Slack Connect) may start tasks.")
    reply_needs_mention: bool = Field(False, alias="SLACKBOT_REPLY_NEEDS_MENTION", description=(
        "Replies in an agent thread reach the agent only when they mention the bot."))
    language: str = Field("", alias="SLACKBOT_LANGUAGE",
                          description="The language the agent answers in; empty: the request's.")

    # Model
    openai_api_key: str = Field("", alias="OPENAI_API_KEY")
    openai_base_url: str = Field("", alias="OPENAI_BASE_URL", description="Empty means OpenAI's.")
    model: str = Field("gpt-5.5", alias="SLACKBOT_MODEL")
    model_api: str = Field("chat", alias="SLACKBOT_MODEL_API", description="chat or responses.")
    models: str = Field("", alias="SLACKBOT_MODELS",
                        description="Comma-separated models people may pick with model= (besides SLACKBOT_MODEL).")
    model_retries: int = Field(4, alias="SLACKBOT_MODEL_RETRIES",
                               description="Retries of HTTP errors (by the openai SDK, honouring Retry-After) "
                                           "and of malformed answers, each.")
    model_timeout_s: float = Field(600.0, alias="SLACKBOT_MODEL_TIMEOUT_S",
                                   description="One model call, every retry and wait included.")
    reasoning_effort: str = Field("", alias="SLACKBOT_REASONING_EFFORT", description=(
        "minimal, low, medium or high for models that take it; empty: the model's default."))
    context_budget_tokens: int = Field(
        200_000, alias="SLACKBOT_CONTEXT_BUDGET_TOKENS",
        description="History above this (estimated) is compacted: first and latest turns kept, middle summarised.")

    # Storage
    data_dir: Path = Field(Path("./storage"), alias="SLACKBOT_DATA_DIR")
    database_url: str = Field("", alias="DATABASE_URL", description="Empty means SQLite in the data directory.")

    # Sandbox
    sandbox_image: str = Field("slackbot-sandbox:latest", alias="SLACKBOT_SANDBOX_IMAGE")
    sandbox_memory: str = Field("2g", alias="SLACKBOT_SANDBOX_MEMORY")
    sandbox_cpus: float = Field(2.0, alias="SLACKBOT_SANDBOX_CPUS")
    sandbox_pids: int = Field(512, alias="SLACKBOT_SANDBOX_PIDS")
    command_channel: bool = Field(True, alias="SLACKBOT_COMMAND_CHANNEL", description=(
        "Agent commands go through one long-lived process in the sandbox (off: one docker exec each)."))
    warm_pool: int = Field(2, ge=0, le=32, alias="SLACKBOT_WARM_POOL", description=(
        "Sandbox containers kept started for tasks without a network (0: off; needs root)."))
    docker_timeout_s: float = Field(60.0, alias="SLACKBOT_DOCKER_TIMEOUT_S",
                                    description="Bound on one docker engine call (not on a command).")
    sandbox_tmp: str = Field("512m", alias="SLACKBOT_SANDBOX_TMP", description="Size of the tmpfs at /tmp.")
    sandbox_subnets: str = Field("10.213.0.0/16", alias="SLACKBOT_SANDBOX_SUBNETS",
                                 description="Addresses for per-task networks (a /28 each).")
    egress_allow: str = Field("", alias="SLACKBOT_EGRESS_ALLOW", description=(
        "Destinations sandboxes with network may reach (hosts, *.domains, host:port, CIDRs); empty: "
        "derived from this machine's pip, npm and apt configuration."))
    egress_network: str = Field("bridge", alias="SLACKBOT_EGRESS_NETWORK",
                                description="The Docker network the egress proxy reaches the outside through.")
    egress_image: str = Field("", alias="SLACKBOT_EGRESS_IMAGE", description="Empty: the sandbox image.")

    network_limit: str = Field("on", alias="SLACKBOT_NETWORK", description=(
        "The most network a task gets: off, setup or on; a repository's own network= applies below it."))
    secrets_key: str = Field("", alias="SLACKBOT_SECRETS_KEY",
                             description="Fernet key that encrypts repository secrets (setup only).")

    # Workspaces and results
    workspace_quota: str = Field("10g", alias="SLACKBOT_WORKSPACE_QUOTA", description="Disk per workspace.")
    workspace_quota_mode: str = Field("auto", alias="SLACKBOT_WORKSPACE_QUOTA_MODE", description=(
        "loop: a loop-mounted filesystem per workspace (needs root); watch: a watcher stops the task; "
        "auto: loop when root, else watch."))
    disk_reserve: str = Field("2g", alias="SLACKBOT_DISK_RESERVE",
                              description="Tasks do not start with less free space in the data directory.")
    result_max: str = Field("512m", alias="SLACKBOT_RESULT_MAX", description="Largest result bundle taken in.")
    max_file: str = Field("50m", alias="SLACKBOT_MAX_FILE",
                          description="Files larger than this are left out of the commit.")
    attachment_max: str = Field("20m", alias="SLACKBOT_ATTACHMENT_MAX", description=(
        "Largest file taken from a Slack message into the workspace (.slack-files/), per file."))
    image_input: str = Field("auto", alias="SLACKBOT_IMAGE_INPUT", description=(
        "Attached images given to the model as image input: on, off, or auto (on, and off for a model "
        "whose endpoint refuses a request with images)."))

    # Agent limits (per task)
    max_steps: int = Field(50, alias="SLACKBOT_MAX_STEPS")
    task_timeout_s: float = Field(1800.0, alias="SLACKBOT_TASK_TIMEOUT_S")
    command_timeout_s: float = Field(300.0, alias="SLACKBOT_COMMAND_TIMEOUT_S")
    output_limit_chars: int = Field(10_000, alias="SLACKBOT_OUTPUT_LIMIT_CHARS",
                                    description="Command output given to the model; head and tail kept.")

    auto_push: str = Field("repository", alias="SLACKBOT_AUTO_PUSH", description=(
        "repository (each repository's auto_push), on or off."))
    plan_mode: bool = Field(False, alias="SLACKBOT_PLAN_MODE",
                            description="Tasks post a plan for approval before they edit.")
    skills_dir: Path | None = Field(None, alias="SLACKBOT_SKILLS_DIR",
                                    description="An admin folder of skills (SKILL.md folders).")
    retention_days: int = Field(0, alias="SLACKBOT_RETENTION_DAYS", ge=0, description=(
        "Days task transcripts are kept; older events are deleted, threads keep their summary. 0: forever."))

    # Concurrency
    max_tasks: int = Field(8, alias="SLACKBOT_MAX_TASKS")
    max_tasks_per_user: int = Field(3, alias="SLACKBOT_MAX_TASKS_PER_USER")
    max_tasks_per_channel: int = Field(4, alias="SLACKBOT_MAX_TASKS_PER_CHANNEL")
    worker_max_tasks: int = Field(0, alias="SLACKBOT_WORKER_MAX_TASKS",
                                  description="Tasks one worker process runs at once (0: SLACKBOT_MAX_TASKS).")
    worker_lease_s: float = Field(30.0, alias="SLACKBOT_WORKER_LEASE_S", gt=0.5,
                                  description="A worker that dies has its tasks marked interrupted within this.")

    # Slack status updates
    update_budget_per_min: int = Field(45, alias="SLACKBOT_UPDATE_BUDGET_PER_MIN",
                                       description="chat.update calls per minute, shared by all messages.")
    update_min_interval_s: float = Field(1.5, alias="SLACKBOT_UPDATE_MIN_INTERVAL_S",
                                         description="Least time between two edits of one message.")
    slack_ui: str = Field("auto", alias="SLACKBOT_SLACK_UI", description=(
        "How a task shows its progress: stream (Slack's native streaming: plan and task steps, the answer "
        "streamed), classic (one status message edited in place) or auto (stream where the workspace has "
        "it, classic where Slack refuses it)."))
    stream_max_open_s: float = Field(240.0, alias="SLACKBOT_STREAM_MAX_OPEN_S", gt=0, description=(
        "A streamed message is closed and the task continues in a new one after this long (Slack ends "
        "streams after about five minutes)."))
    stream_starts_per_min: int = Field(16, alias="SLACKBOT_STREAM_STARTS_PER_MIN", ge=0, description=(
        "chat.startStream calls per minute for the workspace, and as many chat.stopStream calls (a low rate "
        "tier); a quarter is kept for streams continuing in new ones, and a task that finds the rest spent "
        "uses the classic status message."))
    stream_appends_per_min: int = Field(80, alias="SLACKBOT_STREAM_APPENDS_PER_MIN", ge=1,
                                        description="chat.appendStream calls per minute for the workspace.")

    # Automations and the daily digest
    timezone: str = Field("UTC", alias="SLACKBOT_TIMEZONE",
                          description="The digest's time zone, and schedules' when the creator's is unknown.")
    digest_time: str = Field("17:00", alias="SLACKBOT_DIGEST_TIME", description="HH:MM; empty turns the digest off.")
    digest_channel: str = Field("", alias="SLACKBOT_DIGEST_CHANNEL",
                                description="Where a channel's digest goes (a channel id); empty: that channel.")
    prices: str = Field("", alias="SLACKBOT_PRICES", description=(
        "Per model, US dollars per million tokens: input/cached input/output, e.g. "
        "`gpt-5.5=1.25/0.125/10,small=0.25/0.025/2`. Unknown models cost \"—\"."))
    automation_runs_per_hour: int = Field(10, alias="SLACKBOT_AUTOMATION_RUNS_PER_HOUR",
                                          description="Runs one message-triggered automation starts in an hour.")
    automation_catch_up: str = Field("once", alias="SLACKBOT_AUTOMATION_CATCH_UP", description=(
        "Scheduled runs missed while no process was up: `once` (one run catches up) or `skip`."))
    webhook_max_body: str = Field("64k", alias="SLACKBOT_WEBHOOK_MAX_BODY", description="Largest webhook body taken.")

    # Repositories
    branch_prefix: str = Field("slackbot/", alias="SLACKBOT_BRANCH_PREFIX")
    github_token: str = Field("", alias="GITHUB_TOKEN")
    github_api_url: str = Field("https://api.github.com", alias="GITHUB_API_URL")

    @field_validator("model_api")
    @classmethod
    def _check_api(cls, value: str) -> str:
        if value not in ("chat", "responses"):
            raise ValueError("SLACKBOT_MODEL_API must be 'chat' or 'responses'")
        return value

    @field_validator("slack_ui")
    @classmethod
    def _check_slack_ui(cls, value: str) -> str:
        if value not in ("auto", "stream", "classic"):
            raise ValueError("SLACKBOT_SLACK_UI must be auto, stream or classic")
        return value

    @field_validator("reasoning_effort")
    @classmethod
    def _check_effort(cls, value: str) -> str:
        if value not in ("", "minimal", "low", "medium", "high"):
            raise ValueError("SLACKBOT_REASONING_EFFORT must be minimal, low, medium, high or empty")
        return value

    @field_validator("network_limit")
    @classmethod
    def _check_network(cls, value: str) -> str:
        if value not in NETWORK_ORDER:
            raise ValueError("SLACKBOT_NETWORK must be off, setup or on")
        return value

    @field_validator("auto_push")
    @classmethod
    def _check_auto_push(cls, value: str) -> str:
        if value not in ("repository", "on", "off"):
            raise ValueError("SLACKBOT_AUTO_PUSH must be repository, on or off")
        return value

    @field_validator("automation_catch_up")
    @classmethod
    def _check_catch_up(cls, value: str) -> str:
        if value not in ("once", "skip"):
            raise ValueError("SLACKBOT_AUTOMATION_CATCH_UP must be 'once' or 'skip'")
        return value

    @field_validator("prices")
    @classmethod
    def _check_prices(cls, value: str) -> str:
        from .automations.digest import parse_prices  # (here: a bad value stops the start with its reason)

        parse_prices(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (KeyError, ValueError, OSError):  # (an unknown zone is a KeyError, which pydantic passes on)
            raise ValueError(f"{value[:60]!r} is not a time zone (for example Europe/Berlin)") from None
        return value

    @field_validator("digest_time")
    @classmethod
    def _check_digest_time(cls, value: str) -> str:
        if value and not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", value.strip()):
            raise ValueError("SLACKBOT_DIGEST_TIME must be HH:MM (24-hour), for example 17:00")
        return value.strip()

    @field_validator("workspace_quota", "disk_reserve", "result_max", "max_file", "sandbox_tmp", "webhook_max_body",
                     "sandbox_memory", "attachment_max")
    @classmethod
    def _check_size(cls, value: str) -> str:
        parse_size(value)
        return value

    @field_validator("image_input")
    @classmethod
    def _check_image_input(cls, value: str) -> str:
        if value not in ("auto", "on", "off"):
            raise ValueError("SLACKBOT_IMAGE_INPUT must be auto, on or off")
        return value

    @field_validator("workspace_quota_mode")
    @classmethod
    def _check_quota_mode(cls, value: str) -> str:
        if value not in ("auto", "loop", "watch"):
            raise ValueError("SLACKBOT_WORKSPACE_QUOTA_MODE must be auto, loop or watch")
        return value

    def size(self, name: str) -> int:
        """A size setting in bytes."""
        return parse_size(getattr(self, name))

    @property
    def allowed_models(self) -> tuple[str, ...]:
        listed = [m.strip() for m in self.models.split(",") if m.strip()]
        return tuple(dict.fromkeys([self.model, *listed]))

    @property
    def egress_entries(self) -> tuple[str, ...]:
        """SLACKBOT_EGRESS_ALLOW's entries (comma- or line-separated)."""
        return tuple(e.strip() for e in self.egress_allow.replace("\n", ",").split(",") if e.strip())

    @property
    def starter_ids(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.starters.split(",") if a.strip())

    @property
    def task_channel_ids(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.task_channels.split(",") if a.strip())

    @property
    def admin_ids(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.admins.split(",") if a.strip())

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'slackbot.db').resolve()}"

    @property
    def workspaces_dir(self) -> Path:
        return (self.data_dir / "workspaces").resolve()

    @property
    def mirrors_dir(self) -> Path:
        return (self.data_dir / "mirrors").resolve()

    @property
    def scratch_dir(self) -> Path:
        return (self.data_dir / "scratch").resolve()

    @property
    def tmp_dir(self) -> Path:
        """Host-only scratch space (incoming bundles); never mounted into a sandbox."""
        return (self.data_dir / "tmp").resolve()

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, Slack or the sandbox."""
        return [s for s in (self.slack_bot_token, self.slack_app_token, self.slack_signing_secret,
                            self.openai_api_key, self.github_token, self.secrets_key) if s]


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """`512m`, `10g`, `10GiB`, `2048` (bytes): binary units."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text.lower())
    if not match:
        raise ValueError(f"{text!r} is not a size (for example 512m or 10g)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])
