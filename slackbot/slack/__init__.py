"""The Slack surface: Bolt listeners, Block Kit builders, the status renderer. Never imports docker or git."""
