"""Alembic migrations of the store; run them with ``wayport.store.migrate.upgrade``."""
