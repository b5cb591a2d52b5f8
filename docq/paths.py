"""How file paths are stored: as text, reversibly, even when they are not valid UTF-8.

Linux file names are bytes. A path that decodes as UTF-8 is stored as it is. One that
does not (an old archive's Latin-1 names, say) is stored as ``bytes:`` followed by the
path with each undecodable byte written ``\\xHH`` and each backslash doubled. Stored paths
are absolute, so they start with ``/`` and the two forms cannot collide.
"""

from __future__ import annotations

import os
import re

_PREFIX = "bytes:"
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2})")


def to_db(path: str) -> str:
    """The stored text form of ``path`` (a str as ``os.fsdecode`` gives it)."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        raw = os.fsencode(path).replace(b"\\", b"\\\\")
        return _PREFIX + raw.decode("utf-8", "backslashreplace")


def from_db(text: str) -> str:
    """The path that `to_db` stored as ``text``, ready for ``open`` or a command's argv."""
    if not text.startswith(_PREFIX):
        return text
    parts: list[bytes] = []
    position = 0
    body = text[len(_PREFIX) :]
    for match in _ESCAPE.finditer(body):
        parts.append(body[position : match.start()].encode("utf-8"))
        token = match.group(1)
        parts.append(b"\\" if token == "\\" else bytes([int(token[1:], 16)]))
        position = match.end()
    parts.append(body[position:].encode("utf-8"))
    return os.fsdecode(b"".join(parts))
