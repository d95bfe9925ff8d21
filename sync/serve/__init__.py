"""``ticketlint serve``: webhooks from Jira and ServiceNow re-check one ticket in seconds.

- :mod:`sync.serve.app` — the Flask app (``create_app``), endpoints and request checks;
- :mod:`sync.serve.security` — HMAC signatures, timestamps, replay memory;
- :mod:`sync.serve.coalesce` — the worker pool that merges bursts per ticket;
- :mod:`sync.serve.recheck` — re-read, evaluate, store, write back, notify one ticket;
- :mod:`sync.serve.metrics` — the Prometheus text of ``/metrics``;
- :mod:`sync.serve.commands` — the ``serve`` CLI command (waitress).
"""
