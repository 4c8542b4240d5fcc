"""Provider calls: one row per provider attempt, for usage, cost and provider analytics.

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
    op.create_table(
        "provider_calls",
        sa.Column("event_id", sa.String(80), primary_key=True),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("capability", sa.String(64), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_class", sa.String(32), nullable=False),
        sa.Column("fallback", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("units", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_provider_calls_at", "provider_calls", ["at"])
    op.create_index("ix_provider_calls_provider", "provider_calls", ["provider", "at"])


def downgrade() -> None:
    op.drop_index("ix_provider_calls_provider", "provider_calls")
    op.drop_index("ix_provider_calls_at", "provider_calls")
    op.drop_table("provider_calls")
