"""Where a first ``ticketlint sync`` grows: RSS sampled against the code running.

Starts the sandbox (``--size`` records) in this process and runs one ``ticketlint sync
--no-notify --no-writeback`` in a child wrapped by :data:`SAMPLER`: a thread reads the
child's ``VmRSS`` every ``--every`` seconds together with the innermost ticketlint frames
of the main thread. The child prints, per call site, how much RSS rose while it ran and
the highest RSS seen there, so two sizes (e.g. 20,000 and 100,000) show which phase grows
with N. Run: ``python bench/memory.py --size 20000``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # childenv, also when loaded by path

from childenv import child_env

from ticketlint.sandbox.commands import DEMO_JIRA_ENV, DEMO_SNOW_ENV, config_yaml
from ticketlint.sandbox.server import SandboxServer

SAMPLER = """
import atexit, os, runpy, sys, threading, time, collections
main = threading.main_thread().ident
rise = collections.Counter()
top = {}
every = float(os.environ.get("BENCH_EVERY", "0.2"))
def rss():
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) // 1024
def where(ident=main):
    frame = sys._current_frames().get(ident)
    sites = []
    while frame is not None and len(sites) < 3:
        name = frame.f_code.co_filename
        if name.startswith(os.environ["BENCH_ROOT"]) and "/.venv/" not in name:
            sites.append(f"{name.rsplit('/', 2)[-2]}/{name.rsplit('/', 1)[-1]}:"
                         f"{frame.f_lineno} {frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(sites) or "(outside ticketlint)"
line = []
def sample():
    global me
    me = threading.get_ident()
    last = rss()
    while True:
        time.sleep(every)
        now, at = rss(), where()
        if now > last:
            rise[at] += now - last
        top[at] = max(top.get(at, 0), now)
        others = [where(i) for i in sys._current_frames() if i not in (main, me)]
        line.append((now, at, [o for o in others if not o.startswith("(")]))
        last = now
threading.Thread(target=sample, daemon=True).start()
def report():
    with open("/proc/self/status", encoding="ascii") as status:
        hwm = next(int(l.split()[1]) for l in status if l.startswith("VmHWM:")) // 1024
    print(f"peak {hwm} MB; RSS rises by site (MB, highest RSS there):", file=sys.stderr)
    for at, mb in rise.most_common(25):
        print(f"  +{mb:4d}  {top[at]:4d}  {at}", file=sys.stderr)
    step = max(1, len(line) // 40)
    print("timeline (RSS MB, main thread site, other threads):", file=sys.stderr)
    for now, at, others in line[::step]:
        print(f"  {now:4d}  {at[:110]}  | {'; '.join(o[:90] for o in others)}", file=sys.stderr)
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
"""The child's wrapper: samples RSS and the running ticketlint code, reports at exit."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--every", type=float, default=0.2, help="seconds between samples")
    args = parser.parse_args(argv)
    binary = Path(sys.executable).parent / "ticketlint"
    with (
        SandboxServer(seed=args.seed, size=args.size, hidden_share=0.0) as server,
        tempfile.TemporaryDirectory(prefix="ticketlint-bench-mem-") as tmp,
    ):
        work = Path(tmp)
        config = work / "ticketlint.yaml"
        config.write_text(config_yaml(server, f"sqlite:///{work / 'sync.db'}"), encoding="utf-8")
        c = server.credentials
        env = child_env(
            **{
                DEMO_JIRA_ENV: c.jira_token,
                DEMO_SNOW_ENV: c.snow_password,
                "BENCH_EVERY": str(args.every),
                "BENCH_ROOT": str(Path(__file__).resolve().parents[1]),
            }
        )
        argv = ["--config", str(config), "-q", "sync", "--no-notify", "--no-writeback"]
        done = subprocess.run(
            [sys.executable, "-c", SAMPLER, str(binary), *argv], env=env, cwd=work, check=False
        )
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
