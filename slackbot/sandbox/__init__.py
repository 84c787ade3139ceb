"""Sandboxes where the agent's commands run: the docker backend, workspace disks, the image recipe."""

from slackbot.sandbox.container import DockerSandbox
from slackbot.sandbox.disks import DiskError, WorkspaceDisk, WorkspaceDisks
from slackbot.sandbox.docker import DockerSandboxes, SandboxError

__all__ = ["DiskError", "DockerSandbox", "DockerSandboxes", "SandboxError", "WorkspaceDisk", "WorkspaceDisks"]
