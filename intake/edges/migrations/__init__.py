"""The store's schema history as Alembic revisions (env.py, script.py.mako, versions/); run by
intake.edges.schema, never through an alembic.ini."""
