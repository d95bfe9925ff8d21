"""Sync: remember and tell (store, runner, notify, write-back, report, serve)."""
