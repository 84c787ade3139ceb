"""Many processes on one database: workers and their leases, shared coordination rows, stop
requests and pinned tasks, patches out of the event table.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task", sa.Column("stop_by", sa.String(), nullable=False, server_default=""))
    op.add_column("task", sa.Column("pinned", sa.String(), nullable=False, server_default=""))
    op.create_table(
        "patch",
        sa.Column("task_id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("text", sa.Text(), nullable=False))
    op.create_table(
        "worker",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("host", sa.String(), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("proc", sa.String(), nullable=False),
        sa.Column("lease_s", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False))
    op.create_index("ix_worker_seen_at", "worker", ["seen_at"])
    op.create_table(
        "coordination",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("counter", sa.Integer(), nullable=False))
    # The Slack output goes on from the events there are: earlier ones were shown already.
    op.execute("INSERT INTO coordination (name, holder, until, counter) "
               "SELECT 'slack-output', '', NULL, COALESCE(MAX(id), 0) FROM event")
    op.execute("INSERT INTO coordination (name, holder, until, counter) VALUES ('claim-lock', '', NULL, 0), "
               "('queue', '', NULL, 0)")


def downgrade() -> None:
    op.drop_table("coordination")
    op.drop_index("ix_worker_seen_at", "worker")
    op.drop_table("worker")
    op.drop_table("patch")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("pinned")
        batch.drop_column("stop_by")
