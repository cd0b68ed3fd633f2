"""messages.evidence: where each field and the decision came from, as JSON (CPR masked); empty
for messages decided before it (commit b476332).

Revision ID: 0002_messages_evidence
Revises: 0001_baseline
Create Date: 2026-11-25 11:57:21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_messages_evidence"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.add_column(sa.Column("evidence", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("messages") as batch_op:
        batch_op.drop_column("evidence")
