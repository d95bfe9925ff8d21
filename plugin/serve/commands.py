"""``ticketlint serve``: receive Jira and ServiceNow webhooks and re-check tickets at once.

Runs the Flask app of :mod:`ticketlint.plugin.serve.app` under waitress (a production WSGI server in
pure Python). ``cli.py`` adds every command of :data:`COMMANDS`. Exit codes: 0 after a
clean shutdown (SIGTERM / SIGINT), 2 on a configuration or database error.
"""

from __future__ import annotations

import logging
import signal
from types import FrameType
from typing import Any

import click

from ticketlint.config import Config, ConfigError, require_env
from ticketlint.store.db import Store
from ticketlint.sync.cli_support import config_of, fail, store_of


def _load(ctx: click.Context) -> tuple[Config, Store]:
    cfg = config_of(ctx, required=True)
    try:  # the webhook secrets are needed from the first request on
        require_env(cfg, "serve.", "the webhook server")
    except ConfigError as exc:
        fail(str(exc))
    if not cfg.sources:
        fail(f"{cfg.path}: sources: no source is configured; nothing to re-check")
    return cfg, store_of(cfg, create=True)


@click.command("serve")
@click.option("--host", default=None, help="Address to bind (default: serve.host, 127.0.0.1).")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port to listen on (default: serve.port, 8080; 0 = any free port).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="waitress threads answering HTTP requests.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Threads re-checking tickets in the background.",
)
@click.option(
    "--debounce",
    type=click.FloatRange(0, 30),
    default=0.25,
    show_default=True,
    help="Seconds to wait for more events on the same ticket before one re-check.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    threads: int,
    workers: int,
    debounce: float,
) -> None:
    """Receive Jira / ServiceNow webhooks; re-check each changed ticket within seconds.

    POST /hooks/jira and /hooks/servicenow (append /<source> when several sources of a
    type are configured), GET /healthz, GET /metrics (Prometheus). See docs/serve.md.
    """
    from waitress import create_server

    from ticketlint.plugin.serve.app import create_app, serve_state

    cfg, store = _load(ctx)
    if getattr(ctx.find_root().obj, "verbosity", 0) >= 0:
        # A service says what it does: one line per webhook and per re-check (stderr).
        logging.getLogger("ticketlint.plugin.serve").setLevel(logging.INFO)
    try:
        app = create_app(cfg, store, workers=workers, debounce=debounce)
    except (ImportError, ValueError) as exc:  # rule selection errors are ValueErrors
        fail(f"{type(exc).__name__}: {exc}")
    server: Any = create_server(
        app,
        host=host or cfg.serve.host,
        port=cfg.serve.port if port is None else port,
        threads=threads,
        max_request_body_size=cfg.serve.max_body_bytes,
        ident="ticketlint",
        clear_untrusted_proxy_headers=True,
    )
    bound_host = host or cfg.serve.host
    click.echo(
        f"ticketlint serve listening on http://{bound_host}:{server.effective_port} "
        f"(sources: {', '.join(s.name for s in cfg.sources)})",
        err=True,
    )

    def stop(signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopping: finishing queued re-checks", err=True)
    finally:
        server.close()
        serve_state(app).stop(timeout=10.0)
        store.dispose()


COMMANDS = [serve]
