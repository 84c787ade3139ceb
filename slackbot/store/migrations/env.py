"""Alembic's environment: migrates on the connection that `config()` hands over (no alembic.ini)."""

from alembic import context
from sqlmodel import SQLModel

from slackbot.store import models  # noqa: F401  (the tables, for autogenerate)

if context.is_offline_mode():
    raise SystemExit("slackbot migrates a live database only (no --sql mode)")

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=SQLModel.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters by copying tables
with context.begin_transaction():
    context.run_migrations()
