"""python -m tfapp.launch --workers N [--module tfapp.train] -- <train arguments>

Starts N local workers of a MultiWorkerMirroredStrategy job on 127.0.0.1, each with its
own TF_CONFIG, for trying and testing multi-worker training on one machine. In production
the cluster manager (Kubernetes, a managed trainer) sets TF_CONFIG on each worker instead
and runs `python -m tfapp.train ... --strategy multiworker` there.

All workers share one --run-dir (made here if not given); only the chief (worker 0) writes
the export, metrics and TensorBoard summaries. The chief's output is shown as it comes,
other workers' output is kept in RUN/.launch/worker-I.log. If any worker fails, the
others are stopped and the exit status is the first failure's.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import tfapp  # noqa: F401
from tfapp.core.errors import ConfigError, cli_main


def free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports: list[int]) -> list[str]:
    """One TF_CONFIG per worker for a local cluster on `ports`."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def _value(args: list[str], flag: str):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


@cli_main
def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tfapp.launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--module", default="tfapp.train")
    parser.add_argument("rest", nargs=argparse.REMAINDER,
                        help="-- then the arguments of the training command")
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    if args.workers < 1:
        raise ConfigError("--workers must be >= 1")
    if _value(rest, "--strategy") not in (None, "multiworker"):
        raise ConfigError("tfapp.launch runs --strategy multiworker; drop --strategy")
    run_dir = _value(rest, "--run-dir")
    if run_dir is None:
        from tfapp.core.rundir import new_run_dir

        task = _value(rest, "--task") or "run"
        run_dir = str(new_run_dir("runs", task))
        rest = [*rest, "--run-dir", run_dir]
    logs = Path(run_dir) / ".launch"
    logs.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", args.module, *rest, "--strategy", "multiworker"]
    procs = []
    for i, tf_config in enumerate(tf_configs(free_ports(args.workers))):
        env = {**os.environ, "TF_CONFIG": tf_config}
        out = None if i == 0 else open(logs / f"worker-{i}.log", "w")
        procs.append(subprocess.Popen(command, env=env, stdout=out,
                                      stderr=subprocess.STDOUT if out else None))
    print(f"[tfapp] launched {args.workers} workers on 127.0.0.1 (run dir {run_dir}; "
          f"worker logs in {logs})", flush=True)
    status = 0
    try:
        while any(p.poll() is None for p in procs):
            failed = [p for p in procs if p.poll() not in (None, 0)]
            if failed:
                status = failed[0].returncode
                break
            time.sleep(0.5)
        status = status or next((p.returncode for p in procs if p.returncode), 0)
    finally:
        for i, p in enumerate(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    if status:
        print(f"[tfapp] a worker failed (exit {status}); see {logs}", file=sys.stderr)
    sys.exit(status)


if __name__ == "__main__":
    main()
