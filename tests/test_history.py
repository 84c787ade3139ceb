from slackbot.agent.history import repair


def test_repair_answers_dangling_tool_calls_and_drops_orphans():
    call = {"id": "c1", "type": "function", "function": {"name": "shell", "arguments": "{}"}}
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "next"},
        {"role": "tool", "tool_call_id": "zz", "content": "orphan"},
    ]
    fixed = repair(messages)
    assert [m["role"] for m in fixed] == ["user", "assistant", "tool", "user"]
    assert fixed[2]["tool_call_id"] == "c1"
