"""Plan-first tasks and files attached in Slack.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task") as batch:
        batch.add_column(sa.Column("plan", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("approved_by", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("files", sa.Text(), nullable=False, server_default="[]"))
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("files", sa.Text(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("files")
    with op.batch_alter_table("task") as batch:
        batch.drop_column("files")
        batch.drop_column("approved_by")
        batch.drop_column("plan")
