"""Studio templates: a tenant's saved prompts, by name (the gateway's own state, not rebuilt
from a log); assets by blob, so the gallery shows a file once.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "studio_templates",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("prompt", sa.String(2000), nullable=False),
        sa.Column("chip", sa.String(48), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_assets_blob_key", "assets", ["blob_key"])


def downgrade() -> None:
    op.drop_index("ix_assets_blob_key", "assets")
    op.drop_table("studio_templates")
