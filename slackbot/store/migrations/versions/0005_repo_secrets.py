"""Repository secrets for setup commands (ciphertext only).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repo_secret",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("ciphertext", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("repo_id", "name"),
        sa.ForeignKeyConstraint(["repo_id"], ["repository.id"]))
    op.create_index("ix_repo_secret_repo_id", "repo_secret", ["repo_id"])


def downgrade() -> None:
    op.drop_table("repo_secret")  # its index goes with it
