"""The console script leaves with ``os._exit`` (:mod:`ticketlint.exiting`): everything a
normal exit would still do that a user can see must happen all the same."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def _run(body: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = "import sys\nfrom ticketlint.exiting import leave\n" + textwrap.dedent(body)
    # Buffered as in a terminal session's pipe, whatever the test run's own setting.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(("status", "code"), [(None, 0), (0, 0), (1, 1), (2, 2), (130, 130)])
def test_the_status_is_kept_and_buffered_output_is_written(
    tmp_path: Path, status: int | None, code: int
) -> None:
    done = _run(
        f"""
        print("x" * 5000, end="")  # stdout is a pipe: block-buffered, not yet written
        print("to stderr", file=sys.stderr, end="")
        leave(SystemExit({status!r}))
        """,
        tmp_path,
    )
    assert done.returncode == code
    assert done.stdout == "x" * 5000
    assert done.stderr == "to stderr"


def test_atexit_callbacks_and_logging_handlers_run(tmp_path: Path) -> None:
    done = _run(
        """
        import atexit, logging
        handler = logging.FileHandler("log.txt")
        logging.getLogger("t").addHandler(handler)
        logging.getLogger("t").warning("logged before leaving")
        atexit.register(lambda: print("atexit ran"))
        leave(SystemExit(0))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "atexit ran\n"
    assert (tmp_path / "log.txt").read_text() == "logged before leaving\n"


def test_sqlite_stores_are_closed_as_on_a_normal_exit(tmp_path: Path) -> None:
    """SQLite removes its write-ahead log when the last connection closes; without the
    engines disposed, ``os._exit`` would leave ``store.db-wal`` and ``-shm`` behind."""
    done = _run(
        """
        from sqlalchemy import text
        from ticketlint.store.db import open_store
        store = open_store("sqlite:///store.db")
        with store.session() as s, s.begin():
            s.execute(text("CREATE TABLE kept (n INTEGER)"))
            s.execute(text("INSERT INTO kept VALUES (7)"))
        leave(SystemExit(0))
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.db"]
    import sqlite3

    with sqlite3.connect(tmp_path / "store.db") as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(7,)]


def test_a_running_thread_gets_the_normal_exit_that_waits_for_it(tmp_path: Path) -> None:
    done = _run(
        """
        import threading, time
        def late():
            time.sleep(0.3)
            print("the thread finished")
        threading.Thread(target=late).start()
        leave(SystemExit(4))
        """,
        tmp_path,
    )
    assert done.returncode == 4
    assert done.stdout == "the thread finished\n"


def test_a_message_status_is_printed_and_exits_1(tmp_path: Path) -> None:
    done = _run('leave(SystemExit("cannot go on"))', tmp_path)
    assert (done.returncode, done.stderr) == (1, "cannot go on\n")


@pytest.mark.parametrize("ending", ["leave(SystemExit(0))", "sys.exit(0)"])
def test_a_closed_stdout_ends_as_a_normal_exit_does(tmp_path: Path, ending: str) -> None:
    """Output piped into ``head`` that has gone: the same status (120) and message as
    the interpreter's own exit gives."""
    done = _run(
        f"""
        import os
        r, w = os.pipe()
        os.close(r)
        os.dup2(w, 1)
        print("nobody reads this")
        {ending}
        """,
        tmp_path,
    )
    assert done.returncode == 120
    assert "BrokenPipeError" in done.stderr


def test_the_console_script_leaves_no_sqlite_log_files(tmp_path: Path) -> None:
    """The real entry point (``python -m ticketlint.cli`` runs ``main``)."""
    done = subprocess.run(
        [sys.executable, "-m", "ticketlint.cli", "db", "upgrade", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Migrate the database" in done.stdout
    config = tmp_path / "ticketlint.yaml"
    config.write_text(f"database: sqlite:///{tmp_path / 'data' / 'store.db'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "ticketlint.cli", "--config", str(config), "db", "upgrade"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["store.db"]


class _Data:
    """A plain object a weak reference can watch."""


def test_hold_keeps_nothing_unless_the_process_will_leave(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests and programs that import the commands free what they made, run after run."""
    import gc
    import weakref

    from ticketlint import exiting

    monkeypatch.setattr(exiting, "_leaving", False)
    monkeypatch.setattr(exiting, "_held", [])
    data = _Data()
    watched = weakref.ref(data)
    exiting.hold(data)
    del data
    gc.collect()
    assert watched() is None
    assert exiting._held == []


def test_hold_keeps_a_commands_data_once_the_console_script_will_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Freed by the process's end, not one object at a time as the command unwinds."""
    import gc
    import weakref

    from ticketlint import exiting

    monkeypatch.setattr(exiting, "_leaving", False)
    monkeypatch.setattr(exiting, "_held", [])
    exiting.will_leave()
    data = _Data()
    watched = weakref.ref(data)
    exiting.hold(data, None)
    del data
    gc.collect()
    assert watched() is not None


def test_check_holds_its_evaluation_for_the_console_scripts_exit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fixtures_dir: Path
) -> None:
    from click.testing import CliRunner

    from ticketlint import exiting
    from ticketlint.cli import cli
    from ticketlint.rules.engine import Evaluation

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(exiting, "_held", [])
    records = fixtures_dir / "records.jsonl"
    args = ["check", "--exit-zero", "-f", "json", "--input", str(records)]
    monkeypatch.setattr(exiting, "_leaving", False)
    assert CliRunner().invoke(cli, args).exit_code == 0
    assert exiting._held == []

    monkeypatch.setattr(exiting, "_leaving", True)
    done = CliRunner().invoke(cli, args)
    assert done.exit_code == 0, done.output
    (held,) = exiting._held
    (evaluation,) = [o for o in held if isinstance(o, Evaluation)]
    assert evaluation.records > 0 and evaluation.findings
