"""Automations (schedules, channel watches, webhooks), their runs, and saved settings.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "automation",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("creator", sa.String(), nullable=False),
        sa.Column("trigger", sa.String(), nullable=False),
        sa.Column("cron", sa.String(), nullable=False),
        sa.Column("tz", sa.String(), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("watch_channel", sa.String(), nullable=False),
        sa.Column("pattern", sa.Text(), nullable=True),
        sa.Column("secret_hash", sa.String(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=True),
        sa.Column("branch", sa.String(), nullable=False),
        sa.Column("notify", sa.String(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("last_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True)  # an id is never reused: old runs never pass to a new automation
    op.create_index("ix_automation_channel", "automation", ["channel"])
    op.create_index("ix_automation_updated_at", "automation", ["updated_at"])
    op.create_table(
        "automation_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("automation_id", sa.Integer(), nullable=False),
        sa.Column("fire_key", sa.String(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("thread_ts", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("automation_id", "fire_key"))
    op.create_index("ix_automation_run_automation_id", "automation_run", ["automation_id"])
    op.create_index("ix_automation_run_task_id", "automation_run", ["task_id"])
    op.create_index("ix_automation_run_created_at", "automation_run", ["created_at"])
    op.create_table(
        "setting",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("scope", "key"))
    op.add_column("task", sa.Column("automation_id", sa.Integer(), nullable=True))
    op.create_index("ix_task_automation_id", "task", ["automation_id"])
    op.add_column("task", sa.Column("nothing_to_report", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Schedulers look here for changes to automations (a counter bumped on every change).
    op.execute("INSERT INTO coordination (name, holder, until, counter) VALUES ('automations', '', NULL, 0)")


def downgrade() -> None:
    op.execute("DELETE FROM coordination WHERE name = 'automations'")
    with op.batch_alter_table("task") as batch:
        batch.drop_index("ix_task_automation_id")
        batch.drop_column("nothing_to_report")
        batch.drop_column("automation_id")
    op.drop_table("setting")
    op.drop_table("automation_run")
    op.drop_table("automation")
