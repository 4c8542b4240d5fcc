"""Uploads: one row per sanitised upload (the gateway's, not rebuilt from a log).

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("blob_key", sa.String(64), nullable=False),
        sa.Column("thumbnail_key", sa.String(64), nullable=True),
        sa.Column("info", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_uploads_tenant_created", "uploads", ["tenant", "created_at"])


def downgrade() -> None:
    op.drop_table("uploads")
