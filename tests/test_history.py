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


def test_plan_keeps_head_and_latest_turns():
    from slackbot.agent.history import Row, plan

    def row(i, role, tokens=100):
        return Row(i, {"role": role, "content": str(i)}, tokens)

    rows = [row(1, "user"), row(2, "assistant"), row(3, "tool"), row(4, "user"), row(5, "assistant"),
            row(6, "user"), row(7, "assistant")]
    assert plan(rows, budget=10_000) is None
    c = plan(rows, budget=450)
    assert [r.id for r in c.head] == [1]
    assert [r.id for r in c.tail] == [6, 7]
    assert [r.id for r in c.middle] == [2, 3, 4, 5]
    assert c.upto == 5


def test_plan_scales_estimates_to_the_measured_size():
    from slackbot.agent.history import Row, plan

    rows = [Row(i, {"role": "user" if i % 2 else "assistant", "content": str(i)}, 100) for i in range(1, 9)]
    assert plan(rows, budget=1000) is None  # 800 estimated
    c = plan(rows, budget=1000, measured=1600)  # the API counted twice as much
    assert c is not None and c.head[0].id == 1
    assert sum(r.tokens for r in c.tail) * 2 <= 500
