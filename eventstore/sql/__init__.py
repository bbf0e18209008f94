"""SQL backend (SQLite and PostgreSQL) on SQLAlchemy 2 async."""
