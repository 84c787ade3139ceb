"""slackbot: a self-hosted coding agent that lives in Slack."""
