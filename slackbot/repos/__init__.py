"""Host-side git on host-only repositories (mirrors, scratch and throwaway repositories), the scripts
that do git work inside containers, and the GitHub client. Credentials never leave the host."""

from .errors import RepoError
from .git_env import GitRunner
from .github import GitHub, GitHubError
from .mirror import Mirrors, Resolved, branch_name
from .results import Changes, Results, ResultRefused, ensure_scratch, scratch_start, thread_ref

__all__ = ["Changes", "GitHub", "GitHubError", "GitRunner", "Mirrors", "RepoError", "Resolved", "ResultRefused",
           "Results", "branch_name", "ensure_scratch", "scratch_start", "thread_ref"]
