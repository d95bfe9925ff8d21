"""``ticketlint serve``: webhooks from Jira and ServiceNow re-check one ticket in seconds.

- :mod:`ticketlint.plugin.serve.app` — the Flask app (``create_app``), endpoints and request checks;
- :mod:`ticketlint.plugin.serve.security` — HMAC signatures, timestamps, replay memory;
- :mod:`ticketlint.plugin.serve.coalesce` — the worker pool that merges bursts per ticket;
- :mod:`ticketlint.plugin.serve.recheck` — re-read, evaluate, store, write back, notify one ticket;
- :mod:`ticketlint.plugin.serve.metrics` — the Prometheus text of ``/metrics``;
- :mod:`ticketlint.plugin.serve.commands` — the ``serve`` CLI command (waitress).
"""
