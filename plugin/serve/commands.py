"""``ticketlint serve``: receive Jira and ServiceNow webhooks and re-check tickets at once.

Runs the Flask app of :mod:`ticketlint.plugin.serve.app` under waitress (a production WSGI server in
pure Python). ``cli.py`` adds every command of :data:`COMMANDS`. Exit codes: 0 after a
clean shutdown (SIGTERM / SIGINT), 2 on a configuration or database error.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
from types import FrameType
from typing import Any

import click

from ticketlint.config import Config, ConfigError, require_env
from ticketlint.sync.cli_support import config_of, fail, store_of

MAX_HEADER_BYTES = 16_384
"""Request line and headers of a webhook fit in a few hundred bytes (waitress: 256 KB)."""


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and ``localhost``: only this machine can connect."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def missing_secrets(cfg: Config) -> list[str]:
    """The ``serve.*_secret`` keys that a configured source type needs and are not set."""
    missing = []
    for kind, secret in (
        ("jira", cfg.serve.jira_secret),
        ("servicenow", cfg.serve.servicenow_secret),
    ):
        if any(s.type == kind for s in cfg.sources) and (
            secret is None or not secret.get_secret_value()
        ):
            missing.append(f"serve.{kind}_secret")
    return missing


def server_options(cfg: Config, *, threads: int) -> dict[str, Any]:
    """waitress' settings: bounded connections, idle timeout, header and body sizes."""
    return {
        "threads": threads,
        "connection_limit": cfg.serve.connection_limit,
        "channel_timeout": cfg.serve.channel_timeout,
        "cleanup_interval": max(1, min(30, int(cfg.serve.channel_timeout // 2) or 1)),
        "max_request_header_size": MAX_HEADER_BYTES,
        "max_request_body_size": cfg.serve.max_body_bytes,
        "ident": "ticketlint",
        "clear_untrusted_proxy_headers": True,
    }


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
@click.option(
    "--connection-limit",
    type=click.IntRange(10, 100_000),
    default=None,
    help="Connections held open at once (default: serve.connection_limit, 1000).",
)
@click.option(
    "--channel-timeout",
    type=click.FloatRange(0.5, 3600),
    default=None,
    help="Seconds before an idle or slow connection is closed (default: serve.channel_timeout, 15).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Listen on a non-loopback address without webhook secrets (anyone who reaches "
    "the port can queue re-reads, write-backs and chat posts). Said at every start.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    host: str | None,
    port: int | None,
    threads: int,
    workers: int,
    debounce: float,
    connection_limit: int | None,
    channel_timeout: float | None,
    insecure_no_auth: bool,
) -> None:
    """Receive Jira / ServiceNow webhooks; re-check each changed ticket within seconds.

    POST /hooks/jira and /hooks/servicenow (append /<source> when several sources of a
    type are configured), GET /healthz, GET /metrics (Prometheus). See docs/serve.md.
    """
    from waitress import create_server

    from ticketlint.plugin.serve.app import create_app, serve_state

    cfg = config_of(ctx, required=True)
    try:  # the webhook secrets are needed from the first request on
        require_env(cfg, "serve.", "the webhook server")
    except ConfigError as exc:
        fail(str(exc))
    if not cfg.sources:
        fail(f"{cfg.path}: sources: no source is configured; nothing to re-check")
    overrides = {
        k: v
        for k, v in (("connection_limit", connection_limit), ("channel_timeout", channel_timeout))
        if v is not None
    }
    if overrides:
        cfg = cfg.model_copy(update={"serve": cfg.serve.model_copy(update=overrides)})
    bound_host = host or cfg.serve.host
    missing = missing_secrets(cfg)
    if missing and not is_loopback(bound_host):
        if not insecure_no_auth:
            fail(
                f"refusing to listen on {bound_host} without {' and '.join(missing)}: anyone "
                "who reaches the port could queue re-reads, write-backs and chat posts. Set "
                "the secrets (docs/serve.md), listen on 127.0.0.1 behind a reverse proxy, or "
                "pass --insecure-no-auth to accept unsigned webhooks knowingly"
            )
        click.echo(
            f"WARNING: --insecure-no-auth: listening on {bound_host} without "
            f"{' and '.join(missing)}; unsigned webhooks from anyone who reaches the port "
            "are accepted",
            err=True,
        )
    if getattr(ctx.find_root().obj, "verbosity", 0) >= 0:
        # A service says what it does: one line per webhook (with its access line: source,
        # key, verdict, status, latency; never the body) and per re-check (stderr).
        logging.getLogger("ticketlint.plugin.serve").setLevel(logging.INFO)
    store = store_of(cfg, create=True)
    try:
        app = create_app(cfg, store, workers=workers, debounce=debounce)
    except (ImportError, ValueError) as exc:  # rule selection errors are ValueErrors
        fail(f"{type(exc).__name__}: {exc}")
    server: Any = create_server(
        app,
        host=bound_host,
        port=cfg.serve.port if port is None else port,
        **server_options(cfg, threads=threads),
    )
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
