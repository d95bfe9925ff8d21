"""What every store-backed command needs: the configuration named by the root command's
``--config``, the store it names, and the one way to stop with exit code 2.

Shared by ``sync``, ``findings``, ``waive``, ``db``, ``report``, ``evidence``, ``notify``,
``writeback`` and ``serve``, so that they all find the configuration alike and fail alike.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from ticketlint.config import Config, ConfigError, load_config
from ticketlint.store.db import Store, StoreError, normalise_url, open_store, sqlite_path


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit 2 (usage, configuration or store error)."""
    from ticketlint.redact import redact

    click.echo(redact(f"error: {message}"), err=True)
    sys.exit(2)


def config_path(ctx: click.Context) -> Any:
    """The ``--config`` given to the root command (None: the default lookup)."""
    obj = ctx.find_root().obj
    return obj.get("config_path") if isinstance(obj, dict) else getattr(obj, "config_path", None)


def config_of(ctx: click.Context, *, required: bool = False) -> Config:
    """The validated configuration, or exit 2 naming the file and key."""
    try:
        return load_config(config_path(ctx), required=required)
    except ConfigError as exc:
        fail(str(exc))


def check_output_path(path: Path) -> None:
    """Exit 2 before any work when ``-o PATH`` cannot be written: its directory must
    exist (it is never created silently: a typo would hide the file)."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        fail(f"cannot write {path}: directory {parent} does not exist")
    if path.is_dir():
        fail(f"cannot write {path}: it is a directory")


def write_output(path: Path, text: str) -> None:
    """Write ``-o PATH`` (UTF-8), or exit 2 naming the path and the reason."""
    check_output_path(path)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")


def store_exists(cfg: Config) -> bool:
    """False only for a SQLite store whose file is not there (PostgreSQL: True)."""
    path = sqlite_path(normalise_url(cfg.database))
    return path is None or path.exists()


def store_of(cfg: Config, *, create: bool = False) -> Store:
    """The configured store (migrated on first use), or exit 2 saying why it cannot open.

    Commands that only read the store refuse a SQLite file that does not exist (exit 2)
    instead of creating an empty one and reporting "no findings": a wrong working
    directory or configuration must not look like a clean result. ``create`` is for
    the commands that set a store up (``db upgrade``, ``serve``)."""
    path = sqlite_path(normalise_url(cfg.database))
    if path is not None and not create and not store_exists(cfg):
        where = f" (database in {cfg.path})" if cfg.path else " (no configuration file found)"
        fail(f"no store at {path.absolute()}{where}: run `ticketlint sync` first")
    try:
        return open_store(cfg.database)
    except StoreError as exc:
        fail(str(exc))
