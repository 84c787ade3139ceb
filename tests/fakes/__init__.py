"""Fakes of Slack and of an OpenAI-compatible model, served over real HTTP on 127.0.0.1."""

from .model import ModelRequest, ScriptedModel, first_user_text
from .model_steps import Step, ToolCall, error, raw, shell, text, tool_calls
from .slack import Call, FakeSlack
from .slack_payloads import sign

__all__ = [
    "Call",
    "FakeSlack",
    "ModelRequest",
    "ScriptedModel",
    "Step",
    "ToolCall",
    "error",
    "first_user_text",
    "raw",
    "shell",
    "sign",
    "text",
    "tool_calls",
]
