"""The agent: model client, tools, prompts and the loop. Never imports Slack, Docker or git."""

from .loop import Agent, AgentLimits, AgentResult, Emit
from .model import Model, ModelError, ModelReply, OpenAIModel, ToolCall

__all__ = ["Agent", "AgentLimits", "AgentResult", "Emit", "Model", "ModelError", "ModelReply", "OpenAIModel",
           "ToolCall"]
