"""Persistence: the engine, the schema and its migrations, and one repository per table.

No HTTP in here. The store is SQLite (a file in the data directory) by default and PostgreSQL when
``WAYPORT_DATABASE_URL`` names one; the same schema and the same code serve both.
"""

from __future__ import annotations

from wayport.store.engine import create_engine, database_url
from wayport.store.feedback import Feedback, FeedbackRepository
from wayport.store.filters import LogFilters
from wayport.store.logs import InvalidCursor, LogPage, LogRepository
from wayport.store.migrate import upgrade

__all__ = [
    "Feedback",
    "FeedbackRepository",
    "InvalidCursor",
    "LogFilters",
    "LogPage",
    "LogRepository",
    "create_engine",
    "database_url",
    "upgrade",
]
