"""The ticket store: tables (``models``), connections (``engine``), migrations and numbering.

SQLite is the embedded default; PostgreSQL is used when several daemons or tools share the store.
"""
