"""The anime studio's composites (an episode's editable timeline and its exports), an episode's
package config and its mark for the project's scheduled batch, the project's batch schedule (the
gateway's own state).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "composites",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("episode_id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("render_job", sa.String(64), nullable=False),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("timeline", sa.Text, nullable=False),
        sa.Column("exports", sa.Text, nullable=False),
        sa.Column("fps", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("schedule_id", sa.String(64), nullable=True))
    with op.batch_alter_table("episodes") as batch:
        batch.add_column(sa.Column("package_kinds", sa.Text, nullable=True))
        batch.add_column(sa.Column("marked", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("episodes") as batch:
        batch.drop_column("marked")
        batch.drop_column("package_kinds")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("schedule_id")
    op.drop_table("composites")
