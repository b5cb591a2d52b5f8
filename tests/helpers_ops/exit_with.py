"""``exit_with.py CODES``: print a line to stdout and two to stderr, then exit with the
code for this attempt. CODES is a comma-separated list, one code per attempt
(``DOCQ_ATTEMPT``; the last one repeats), or ``@FILE`` to read that list from FILE (the
document itself, with ``@{path}``)."""

from __future__ import annotations

import os
import sys


def codes(spec: str) -> list[int]:
    if spec.startswith("@"):
        with open(spec[1:]) as stream:
            spec = stream.read()
    return [int(code) for code in spec.replace(",", " ").split()]


def main(argv: list[str]) -> int:
    attempt = int(os.environ.get("DOCQ_ATTEMPT", "1"))
    planned = codes(argv[0])
    code = planned[min(attempt, len(planned)) - 1]
    sys.stdout.write(f"result of attempt {attempt}\nsecond line\n")
    sys.stderr.write(f"starting attempt {attempt}\nlast words: exit {code}\n")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
