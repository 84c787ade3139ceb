"""Host-side git: workspaces, mirrors, commits and pushes. Credentials never leave the host."""

from .git_env import GitRunner
from .workspace import CommitResult, Workspaces

__all__ = ["CommitResult", "GitRunner", "Workspaces"]
