"""Baseline: the store as the first released build made it (stop 6, commit d98b889,
intake/store.py), before any migration existed.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-22 10:41:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("municipality", sa.String(), nullable=True),
        sa.Column("sender", sa.String(), nullable=True),
        sa.Column("client_name", sa.String(), nullable=True),
        sa.Column("cpr_masked", sa.String(), nullable=True),
        sa.Column("cpr_hmac", sa.String(), nullable=True),
        sa.Column("examinations", sa.String(), nullable=False),
        sa.Column("missing", sa.String(), nullable=False),
        sa.Column("redirect_reason", sa.String(), nullable=True),
        sa.Column("has_problem", sa.Boolean(), nullable=False),
        sa.Column("attachments", sa.Integer(), nullable=False),
        sa.Column("waiting_since", TS, nullable=True),
        sa.Column("reminded_at", TS, nullable=True),
        sa.Column("accepted_at", TS, nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("close_reason", sa.String(), nullable=True),
        sa.Column("purged_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cases_cpr_hmac", "cases", ["cpr_hmac"])
    op.create_index("ix_cases_ref", "cases", ["ref"], unique=True)

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("case_ref", sa.String(), nullable=True),
        sa.Column("detail", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_case_ref", "audit", ["case_ref"])

    op.create_table(
        "checkpoints",
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("last_uid", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("folder"),
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("content_hash", sa.String(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.Integer(), nullable=False),
        sa.Column("uid", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("missing", sa.String(), nullable=False),
        sa.Column("examinations", sa.String(), nullable=False),
        sa.Column("attachments", sa.Integer(), nullable=False),
        sa.Column("sender", sa.String(), nullable=True),
        sa.Column("municipality", sa.String(), nullable=True),
        sa.Column("target_folder", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("filed_at", TS, nullable=True),
        sa.Column("filed_folder", sa.String(), nullable=True),
        sa.Column("followup", sa.Boolean(), nullable=False),
        sa.Column("encryption", sa.String(), nullable=True),
        sa.Column("signature_verdict", sa.String(), nullable=True),
        sa.Column("signer", sa.String(), nullable=True),
        sa.Column("archive_path", sa.String(), nullable=True),
        sa.Column("purged_at", TS, nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_messages_content_hash", "messages", ["content_hash"])
    op.create_index("ix_messages_case_id", "messages", ["case_id"])
    op.create_index("ix_messages_message_id", "messages", ["message_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("message_record_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("to_addr", sa.String(), nullable=False),
        sa.Column("from_addr", sa.String(), nullable=False),
        sa.Column("reply_message_id", sa.String(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["message_record_id"], ["messages.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_outbox_to_addr", "outbox", ["to_addr"])
    op.create_index("ix_outbox_reply_message_id", "outbox", ["reply_message_id"])
    op.create_index("ix_outbox_case_id", "outbox", ["case_id"])


def downgrade() -> None:
    for table in ("outbox", "messages", "checkpoints", "audit", "cases"):
        op.drop_table(table)
