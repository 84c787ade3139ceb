"""Sandboxes where the agent's commands run: the docker backend, and the image recipe it needs."""

from slackbot.sandbox.docker import DockerSandbox, DockerSandboxes, SandboxError

__all__ = ["DockerSandbox", "DockerSandboxes", "SandboxError"]
