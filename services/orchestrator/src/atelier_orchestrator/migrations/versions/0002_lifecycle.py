"""Job lifecycle: deadlines, tombstones, tags; the gateway's idempotency keys and tag registry.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("next_deadline_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_index("ix_jobs_next_deadline", "jobs", ["next_deadline_at"])
    op.create_index("ix_jobs_tenant_priority", "jobs", ["tenant", "priority"])
    op.create_table(
        "job_tags",
        sa.Column("job_id", sa.String(64), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
    )
    op.create_index("ix_job_tags_tenant_tag", "job_tags", ["tenant", "tag"])
    op.create_table(
        "idempotency_keys",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("response_headers", sa.Text, nullable=True),
        sa.Column("response_body", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_idempotency_expires", "idempotency_keys", ["expires_at"])
    op.create_table(
        "tags",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tags")
    op.drop_index("ix_idempotency_expires", "idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index("ix_job_tags_tenant_tag", "job_tags")
    op.drop_table("job_tags")
    op.drop_index("ix_jobs_tenant_priority", "jobs")
    op.drop_index("ix_jobs_next_deadline", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("deleted")
        batch.drop_column("next_deadline_at")
