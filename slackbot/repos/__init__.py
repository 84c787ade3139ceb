"""Host-side git: workspaces, mirrors, commits and pushes. Credentials never leave the host."""

from .errors import RepoError
from .git_env import GitRunner
from .github import GitHub, GitHubError
from .mirror import Checkout, Mirrors, branch_name
from .workspace import CommitResult, Workspaces

__all__ = ["Checkout", "CommitResult", "GitHub", "GitHubError", "GitRunner", "Mirrors", "RepoError", "Workspaces",
           "branch_name"]
