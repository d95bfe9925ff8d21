"""Store: what ticketlint remembers: SQLAlchemy models and Alembic migrations (SQLite or
PostgreSQL), repository functions, the findings lifecycle, waivers and the findings view.

May import: config, mapping, rules. Never connectors (no HTTP) and never sync.
"""
