"""Alembic's environment for the store: runs revisions on the connection intake.edges.schema hands
over (config.attributes["connection"], inside that caller's transaction) against the models'
metadata. Batch mode, so a revision's ALTERs also work on SQLite."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import intake.edges.store  # noqa: F401  the models' tables in SQLModel.metadata


def render_item(kind: str, obj, autogen_context):  # noqa: ANN001, ANN201
    """New revisions name plain SQLAlchemy types, not sqlmodel's (what they are in the database)."""
    from sqlmodel.sql.sqltypes import AutoString

    if kind == "type" and isinstance(obj, AutoString):
        return "sa.String()" if obj.impl.length is None else f"sa.String(length={obj.impl.length})"
    if kind == "type" and type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


config = context.config
if context.is_offline_mode():
    raise RuntimeError("the store's migrations run on a connection (intake db upgrade), not as SQL text")

context.configure(connection=config.attributes["connection"], target_metadata=SQLModel.metadata,
                  render_as_batch=True, compare_type=True, render_item=render_item)
with context.begin_transaction():
    context.run_migrations()
