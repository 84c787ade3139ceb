"""Persistence: SQLModel tables and an async store over a bounded executor."""

from .models import AgentThread, EventRow, HistoryRow, InboxRow, SeenRow, Task
from .store import Limits, Store

__all__ = ["AgentThread", "EventRow", "HistoryRow", "InboxRow", "Limits", "SeenRow", "Store", "Task"]
