"""Alembic environment and versions of the store schema (run in code by ``ticketlint.store.db``)."""
