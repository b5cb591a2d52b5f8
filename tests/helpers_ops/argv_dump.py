"""Record how docq ran this command: ``argv_dump.py OUTDIR ARG...`` writes
``OUTDIR/ITEM-ATTEMPT.json`` (from ``DOCQ_ITEM_ID`` and ``DOCQ_ATTEMPT``) holding its
arguments and ``DOCQ_*`` variables, each as the hex of its exact bytes (names that are not
UTF-8 survive), and its pid, process group and working directory. Prints ``dumped``."""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    outdir = argv[0]
    record = {
        "argv": [os.fsencode(argument).hex() for argument in argv],
        "env": {
            os.fsdecode(key): value.hex() for key, value in os.environb.items() if key.startswith(b"DOCQ_")
        },
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "cwd": os.getcwd(),
    }
    name = f"{os.environ.get('DOCQ_ITEM_ID', 'x')}-{os.environ.get('DOCQ_ATTEMPT', 'x')}.json"
    temporary = os.path.join(outdir, name + ".tmp")
    with open(temporary, "w") as stream:
        json.dump(record, stream)
    os.replace(temporary, os.path.join(outdir, name))  # readers never see half a file
    print("dumped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
