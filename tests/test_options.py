from slackbot.slack.options import MentionOptions, parse_options


def test_mention_options_are_taken_out_of_the_text():
    parsed = parse_options("repo=api branch=release-2 fix the <https://x.y/z|date> bug model=gpt-x")
    assert parsed == MentionOptions("fix the <https://x.y/z|date> bug", "api", "release-2", "gpt-x")
    assert parse_options("repo=<https://git.example.com/a.git> go").repo == "https://git.example.com/a.git"
    assert parse_options("no options here") == MentionOptions("no options here")
