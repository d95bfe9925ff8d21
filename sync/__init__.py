"""Sync: the run that keeps the store current: incremental reads per source and stream,
watermarks, the lock, progress and the end-of-run summary.

May import: config, connectors, mapping, rules, store. Never notify, report or plugin:
what happens after a run (chat, write-back) is handed to the runner as hooks by the CLI.
"""
