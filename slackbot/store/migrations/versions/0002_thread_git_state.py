"""A thread's git state and setup, ad-hoc repositories' trust, a task's delivered final message.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

THREAD_SHAS = ("base_sha", "tip_sha", "latest_base_sha", "setup_hash")


def upgrade() -> None:
    # Non-null columns need a server default for ALTER TABLE ADD COLUMN to fill existing rows.
    for name in THREAD_SHAS:
        op.add_column("agent_thread", sa.Column(name, sa.String(), nullable=False, server_default=""))
    op.add_column("agent_thread", sa.Column("repo_trusted", sa.Boolean(), nullable=False,
                                            server_default=sa.true()))
    # Tasks already there count as announced, so recovery never posts their final messages again.
    op.add_column("task", sa.Column("announced", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.drop_column("announced")
    with op.batch_alter_table("agent_thread") as batch:
        for name in (*THREAD_SHAS, "repo_trusted"):
            batch.drop_column(name)
