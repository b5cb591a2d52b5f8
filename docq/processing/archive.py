"""Reading ZIP packages (DOCX, XLSX, PPTX, ODF, EPUB) and their XML without trusting them.

A package is checked before any entry is read: an entry that claims to be huge, that
expands far more than real documents do, or a package whose entries add up past a cap,
is a zip bomb and fails at once as ``permanent: suspicious archive: ...``, never as a
transient failure retried until the attempts run out. XML is parsed without external
entities, without entity expansion and without network access.
"""

from __future__ import annotations

import zipfile
from typing import Any

from docq.errors import CorruptDocument, PermanentError

MAX_ENTRY = 512 * 1024 * 1024
"""An entry that unpacks to more than this is refused."""
MAX_TOTAL = 1024 * 1024 * 1024
"""Nor may all entries together unpack to more than this."""
MAX_RATIO = 200
"""Real documents compress XML about 10:1, rarely past 50:1; bombs go far beyond."""
RATIO_FROM = 1024 * 1024
"""Entries smaller than this unpacked are not held to the ratio (tiny entries compress well)."""


class SuspiciousArchive(PermanentError):
    """A package that would unpack to far more than it holds: a zip bomb, or damage that looks like one."""


def open_package(path: str, name: str) -> zipfile.ZipFile:
    """The ZIP package at ``path``, checked (see the module's docstring). Raises
    `SuspiciousArchive`, or `CorruptDocument` for a file that is no readable ZIP."""
    try:
        package = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as error:
        raise CorruptDocument(f"corrupt: {name}: not a readable ZIP package ({error})") from error
    try:
        check_package(package, name)
    except BaseException:
        package.close()
        raise
    return package


def check_package(package: zipfile.ZipFile, name: str) -> None:
    """Refuse ``package`` if its entries would unpack to a bomb's sizes."""
    total = 0
    for info in package.infolist():
        size = info.file_size
        if size > MAX_ENTRY:
            raise SuspiciousArchive(
                f"suspicious archive: {name}: {info.filename} would unpack to {size:,} bytes"
            )
        packed = max(info.compress_size, 1)
        if size >= RATIO_FROM and size > MAX_RATIO * packed:
            raise SuspiciousArchive(
                f"suspicious archive: {name}: {info.filename} expands {size / packed:,.0f} times "
                f"({info.compress_size:,} to {size:,} bytes)"
            )
        total += size
        if total > MAX_TOTAL:
            raise SuspiciousArchive(
                f"suspicious archive: {name}: its entries unpack to over {MAX_TOTAL:,} bytes"
            )


def read_member(package: zipfile.ZipFile, member: str, name: str) -> bytes:
    """The bytes of ``member``, read no further than the size the package declared (a
    lying header cannot make it read more). Raises `CorruptDocument` if it is missing or
    damaged."""
    import zlib

    try:
        info = package.getinfo(member)
    except KeyError as error:
        raise CorruptDocument(f"corrupt: {name}: {member} is missing") from error
    try:
        with package.open(info) as stream:
            return stream.read(info.file_size + 1)[: info.file_size]
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as error:
        # A damaged entry (bad checksum, cut off, an unknown compression, a password).
        raise CorruptDocument(f"corrupt: {name}: {member} cannot be read ({error})") from error


def parse_xml(data: bytes, name: str) -> Any:
    """``data`` parsed as XML (an lxml element), with no entity expansion, no external
    entities, no network and no huge-tree allowances. Raises `CorruptDocument`."""
    from lxml import etree

    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )
    try:
        return etree.fromstring(data, parser)
    except etree.XMLSyntaxError as error:
        raise CorruptDocument(f"corrupt: {name}: XML that cannot be read ({error})") from error
