"""serve's shared state: accepted webhook deliveries (replay protection) and the last
re-read of each ticket (re-read rate), so both hold across replicas sharing one store.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("seen_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_webhook_deliveries_seen_at", "webhook_deliveries", ["seen_at"])
    op.create_table(
        "serve_rereads",
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("last_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("serve_rereads")
    op.drop_index("ix_webhook_deliveries_seen_at", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
