"""The agent: model client, tools, prompts and the loop. Never imports Slack, Docker or git."""

from .loop import Agent, AgentLimits
from .model import Model, ModelError, ModelReply, OpenAIModel, ToolCall

__all__ = ["Agent", "AgentLimits", "Model", "ModelError", "ModelReply", "OpenAIModel", "ToolCall"]
