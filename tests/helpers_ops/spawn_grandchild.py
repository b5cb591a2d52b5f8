"""``spawn_grandchild.py PIDDIR MODES``: start a grandchild ``sleep 600`` in this process's
group, write ``COMMAND_PID GRANDCHILD_PID`` to ``PIDDIR/ITEM-ATTEMPT.pids`` (from
``DOCQ_ITEM_ID`` and ``DOCQ_ATTEMPT``), then behave as MODES says for this attempt:

* ``hang``: sleep forever (the grandchild's output goes to /dev/null);
* ``exit``: exit 0 at once, leaving the grandchild behind (its output to /dev/null);
* ``exit-holding-pipes``: the same, but the grandchild holds this command's stdout and
  stderr open, as a daemon started with ``&`` from a script does.

MODES is a comma-separated list, one per attempt (the last one repeats), or ``@FILE`` to
read that list from FILE (the document itself, with ``@{path}``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

MODES = ("hang", "exit", "exit-holding-pipes")


def main(argv: list[str]) -> int:
    piddir, spec = argv[0], argv[1]
    if spec.startswith("@"):
        with open(spec[1:]) as stream:
            spec = stream.read()
    plan = spec.replace(",", " ").split()
    attempt = int(os.environ.get("DOCQ_ATTEMPT", "1"))
    mode = plan[min(attempt, len(plan)) - 1]
    if mode not in MODES:
        raise SystemExit(f"unknown mode {mode!r}")
    sink = None if mode == "exit-holding-pipes" else subprocess.DEVNULL
    grandchild = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    name = f"{os.environ['DOCQ_ITEM_ID']}-{attempt}.pids"
    temporary = os.path.join(piddir, name + ".tmp")
    with open(temporary, "w") as stream:
        stream.write(f"{os.getpid()} {grandchild.pid}\n")
    os.replace(temporary, os.path.join(piddir, name))  # readers never see half a file
    print(f"grandchild {grandchild.pid} started", flush=True)
    if mode != "hang":
        return 0
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
