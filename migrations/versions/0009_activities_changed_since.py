"""activities by last change, for the analytics snapshot's incremental refresh

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22 23:20:00
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_activities_updated", "activities", ["updated_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_activities_updated", table_name="activities")
