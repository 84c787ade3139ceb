"""Task management: queue, workers, steering inbox, stop, recovery."""

from .bus import EventBus
from .manager import RunManager
from .task_run import RunContext

__all__ = ["EventBus", "RunContext", "RunManager"]
