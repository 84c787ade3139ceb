"""Persistence: SQLModel tables and an async store over a bounded executor."""

from .automations import AutomationStore
from .coord import Coord
from .migrations import SchemaState, SchemaTooNew
from .models import (
    AgentThread, Automation, AutomationRun, ChannelRepo, EventRow, HistoryRow, InboxRow, RepoBinding, Repository,
    RepoSecret, SeenRow, Task, WorkerRow,
)
from .queue import Limits, Queue
from .repos import LinkedRepo, RepoConflict, RepoStore
from .saved_settings import SavedSettings
from .secrets import RepoSecrets, SecretInfo
from .store import Store

__all__ = ["AgentThread", "Automation", "AutomationRun", "AutomationStore", "ChannelRepo", "Coord", "EventRow",
           "HistoryRow", "InboxRow", "Limits", "LinkedRepo", "Queue", "RepoBinding", "RepoConflict", "RepoSecret",
           "RepoSecrets", "RepoStore", "Repository", "SavedSettings", "SchemaState", "SchemaTooNew", "SecretInfo",
           "SeenRow", "Store", "Task", "WorkerRow"]
