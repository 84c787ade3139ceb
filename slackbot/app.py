"""Composition root: builds every part from settings and owns their lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any, Coroutine

import openai

from .agent import OpenAIModel
from .redact import Redactor
from .repos import GitRunner, Mirrors, Results
from .runs import EventBus, RunContext, RunManager
from .runs.feed import EventFeed
from .runs.repo_ops import RepoOps
from .runs.signals import Signals
from .runs.workers import Identity
from .sandbox import DockerSandboxes, WorkspaceDisks
from .settings import Settings
from .store import AutomationStore, Coord, RepoStore, Store

log = logging.getLogger(__name__)


class Background:
    """Owns background tasks: strong references, errors logged, all awaited on close."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception():
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Models:
    """The model client for a name; all share one HTTP client, so names cost no connections."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = openai.AsyncOpenAI(base_url=settings.openai_base_url or None,
                                          api_key=settings.openai_api_key or "none", max_retries=0,
                                          timeout=settings.model_timeout_s)
        self.no_images: set[str] = set()  # models whose endpoint refused image input (SLACKBOT_IMAGE_INPUT=auto)

    def __call__(self, name: str, effort: str = "") -> OpenAIModel:
        s = self.settings
        return OpenAIModel(name=name, api=s.model_api, retries=s.model_retries, client=self._client,
                           timeout_s=s.model_timeout_s, effort=effort, image_input=s.image_input,
                           no_images=self.no_images)

    async def close(self) -> None:
        await self._client.close()


def egress_allowlist(settings: Settings) -> tuple[str, ...]:
    """Where networked sandboxes may go: the setting, else what this machine's package managers use."""
    if settings.egress_entries:
        return settings.egress_entries
    from .sandbox.egress_allow import default_allowlist

    return tuple(default_allowlist())


def instance_label(settings: Settings) -> str:
    """Containers of one bot installation (one database) carry this label, so reaping spares others."""
    return hashlib.sha256(settings.db_url.encode()).hexdigest()[:10]


class Bot:
    """`async with Bot(settings) as bot:` runs the Slack front and/or a worker until the block ends."""

    def __init__(self, settings: Settings, *, port: int = 3000, http: bool = False, front: bool = True,
                 worker: bool = True, exclusive: bool = False) -> None:
        """`front`: Slack (events in, task output out); `worker`: runs tasks; `exclusive`: runs only
        the tasks pinned to it (the terminal's `exec`, which shares the database with a running bot)."""
        self.settings = settings
        self.port = port
        self.http = http
        self.front = front
        self.worker = worker
        self.exclusive = exclusive
        self.background = Background()
        self.server: Any = None
        self.updater: Any = None
        self.feed: EventFeed | None = None
        self.scheduler: Any = None  # automations.Scheduler, in a process with Slack's front
        self.digest: Any = None  # automations.DigestJob, likewise
        kind = "exec" if exclusive else "+".join(k for k, on in (("front", front), ("worker", worker)) if on)
        self.identity = Identity(kind or "idle")

    async def start(self) -> None:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(s.db_url)
        await self.store.upgrade()  # first: a database newer than the code stops the start here
        self.signals = Signals(s.db_url)
        await self.signals.start()
        # Commands hold a thread each for their whole run: room for every task plus engine calls.
        self.sandboxes = DockerSandboxes(s, instance=instance_label(s), worker=self.identity.id,
                                         max_workers=s.max_tasks + 8)
        self.git = GitRunner()
        self.models = Models(s)
        self.bus = EventBus(self.store, redactor=Redactor(s.secrets()), signals=self.signals)
        mirrors = Mirrors(s.mirrors_dir, self.git, github_token=s.github_token, data_dir=s.data_dir)
        self.disks = WorkspaceDisks(s.workspaces_dir, quota_bytes=s.size("workspace_quota"),
                                    mode=s.workspace_quota_mode, tmp_dir=s.tmp_dir,
                                    reserve_bytes=s.size("disk_reserve"))
        results = Results(self.git, s.tmp_dir, expanded_cap=8 * s.size("result_max"))
        ctx = RunContext(s, self.store, self.bus, self.sandboxes, self.disks, self.git, results,
                         self.models, RepoOps(s, self.store, mirrors, redactor=self.bus.redactor), instance=instance_label(s),
                         egress_allow=egress_allowlist(s))
        self.runs = RunManager(ctx, identity=self.identity, signals=self.signals, run_worker=self.worker,
                               pinned_only=self.exclusive)
        if self.front:
            await self._start_slack()
        await self.runs.start()
        if self.server:
            self.server.ready = True

    async def _start_slack(self) -> None:
        # Imported here: workers and the CLI's exec command run without any Slack part.
        from .slack.app import bolt_app, web_client
        from .slack.deps import Deps
        from .slack.files import FileNotices
        from .slack.home import HomeRefresher
        from .slack.renderer import SlackRenderer
        from .slack.server import SlackServer
        from .slack.updater import StatusUpdater
        from .slack.webhooks import WebhookRoute

        s = self.settings
        self.client = web_client(s)
        auth = await self.client.auth_test()
        self.updater = StatusUpdater(self.client, per_min=s.update_budget_per_min,
                                     min_interval_s=s.update_min_interval_s)
        streams = None
        if s.slack_ui != "classic":
            from .slack.stream import StreamSink

            # Appends are coalesced: one per stream every two status-edit intervals at most.
            streams = StreamSink(self.client, mode=s.slack_ui, team_id=str(auth.get("team_id") or ""),
                                 max_open_s=s.stream_max_open_s, flush_s=2 * s.update_min_interval_s,
                                 starts_per_min=s.stream_starts_per_min, appends_per_min=s.stream_appends_per_min)
        renderer = SlackRenderer(self.client, self.updater, self.store, max_file=s.max_file, streams=streams)
        # Task output reaches Slack from the database, through whichever front holds the output lease.
        self.feed = EventFeed(self.store, Coord(self.store), self.signals, self.identity.id,
                              lease_s=s.worker_lease_s)
        self.feed.add_sink(renderer)
        feed = self.feed
        self.runs.positions_owner = lambda: feed.held
        self.background.spawn(self.updater.run(), "status-updater")
        self.background.spawn(renderer.tick(), "status-ticker")
        if streams is not None:
            self.background.spawn(streams.run(), "stream-appender")
        self.deps = Deps(s, self.store, self.runs, renderer, self.client, RepoStore(self.store),
                         bot_user_id=auth.get("user_id", ""), bot_id=auth.get("bot_id", ""))
        self.feed.add_sink(FileNotices(renderer.poster))  # what a run could not take of attached files
        self._start_automations()
        home = HomeRefresher(self.deps)
        self.feed.add_sink(home)
        self.background.spawn(home.run(), "home-refresher")
        await self.feed.start()
        socket_mode = bool(s.slack_app_token) and not self.http
        assert self.deps.automations is not None
        hooks = WebhookRoute(self.deps.automations, max_body=s.size("webhook_max_body"))
        self.server = SlackServer(bolt_app(self.deps, socket_mode=socket_mode), port=self.port,
                                  app_token=s.slack_app_token, http=self.http, hooks=hooks)
        await self.server.start()
        self.port = self.server.port
        assert self.scheduler is not None
        await self.scheduler.start()

    def _start_automations(self) -> None:
        from .automations.digest_job import DigestJob
        from .automations.runner import Runner
        from .automations.scheduler import Scheduler
        from .automations.service import Automations
        from .slack.automation_surface import SlackSurface

        s = self.settings
        store = AutomationStore(self.store)
        surface = SlackSurface(self.deps)
        runner = Runner(store, RepoStore(self.store), surface)
        self.deps.automations = Automations(store, runner, runs_per_hour=s.automation_runs_per_hour)
        self.scheduler = Scheduler(store, runner, catch_up=s.automation_catch_up)
        self.digest = self.deps.digest = DigestJob(self.store, surface, s)
        scheduler, digest = self.scheduler, self.digest
        scheduler.also_sync(lambda: digest.sync(scheduler))

    async def stop(self) -> None:
        if self.scheduler:
            await self.scheduler.stop()
        if self.server:
            await self.server.stop()
        await self.runs.stop()
        await self.bus.close()
        if self.feed:
            await self.feed.stop()
        if self.updater:
            try:
                await self.updater.flush(10)
            except TimeoutError:
                log.warning("some status edits were not sent before shutdown")
        await self.background.close()
        await self.signals.stop()
        await self.models.close()
        await self.sandboxes.aclose()
        self.disks.close()
        self.git.close()
        await self.store.aclose()

    async def __aenter__(self) -> "Bot":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
