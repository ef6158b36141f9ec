"""audit redaction: a digest of each record's payload, and a flag on redacted records

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 19:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload_digest", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("redacted", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("redacted")
        batch_op.drop_column("payload_digest")
