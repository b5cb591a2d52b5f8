"""``sleeper.py PIDDIR SECONDS``: write this process's pid to ``PIDDIR/ITEM-ATTEMPT.pid``
(from ``DOCQ_ITEM_ID`` and ``DOCQ_ATTEMPT``), sleep, print ``slept N`` and exit 0.
SECONDS is a comma-separated list, one per attempt (the last one repeats), or ``@FILE``
to read that list from FILE (the document itself, with ``@{path}``)."""

from __future__ import annotations

import os
import sys
import time


def main(argv: list[str]) -> int:
    piddir, spec = argv[0], argv[1]
    if spec.startswith("@"):
        with open(spec[1:]) as stream:
            spec = stream.read()
    plan = [float(value) for value in spec.replace(",", " ").split()]
    attempt = int(os.environ.get("DOCQ_ATTEMPT", "1"))
    seconds = plan[min(attempt, len(plan)) - 1]
    name = f"{os.environ['DOCQ_ITEM_ID']}-{attempt}.pid"
    temporary = os.path.join(piddir, name + ".tmp")
    with open(temporary, "w") as stream:
        stream.write(str(os.getpid()))
    os.replace(temporary, os.path.join(piddir, name))
    time.sleep(seconds)
    print(f"slept {seconds:g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
