"""``flood.py STDOUT_BYTES STDERR_BYTES DONE_FILE``: write that many bytes of ASCII to
stdout and to stderr (interleaved, in 64 KiB pieces; stderr ends with the line
``stderr ends here``), then create DONE_FILE and exit 0. A reader that stops draining
either pipe blocks it; one that closes a pipe early kills it with SIGPIPE."""

from __future__ import annotations

import os
import sys

PIECE = 64 * 1024


def main(argv: list[str]) -> int:
    out_left, err_left = int(argv[0]), int(argv[1])
    last_line = b"stderr ends here\n"
    err_left -= len(last_line)
    while out_left > 0 or err_left > 0:
        if out_left > 0:
            n = min(PIECE, out_left)
            _write_all(1, b"o" * (n - 1) + b"\n")
            out_left -= n
        if err_left > 0:
            n = min(PIECE, err_left)
            _write_all(2, b"e" * (n - 1) + b"\n")
            err_left -= n
    _write_all(2, last_line)
    with open(argv[2], "w") as stream:
        stream.write("done\n")
    return 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
