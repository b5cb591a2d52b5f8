"""``ledger.py DOCUMENT_ID LEDGER``: append ``ITEM_ID DOCUMENT_ID PID`` (from
``DOCQ_ITEM_ID``, the argument and this process) to LEDGER in one ``O_APPEND`` write, so
lines of concurrent commands never mix. The test's oracle of what actually ran."""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    line = f"{os.environ['DOCQ_ITEM_ID']} {argv[0]} {os.getpid()}\n".encode()
    fd = os.open(argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
