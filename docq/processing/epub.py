"""EPUB books: the text of each document of the spine, in reading order, and the book's metadata.

META-INF/container.xml names the package document (the OPF); its spine orders the
XHTML documents, each read as HTML and joined with a blank line. Title, author and date
come from the OPF's Dublin Core metadata. A book whose spine documents are listed in
META-INF/encryption.xml is under DRM; fonts listed there are only obfuscated, which
hides no text.
"""

from __future__ import annotations

import posixpath
import zipfile
import zlib
from typing import Any
from urllib.parse import unquote

from docq.errors import CorruptDocument, EncryptedDocument
from docq.processing.archive import open_package, parse_xml, read_member
from docq.processing.content import Content, clean_title
from docq.processing.html import extract_html
from docq.processing.opendocument import iso_date

EXTRACTOR = "docq"

_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
_OPF_TYPE = "application/oebps-package+xml"
_HTML_TYPES = frozenset({"application/xhtml+xml", "text/html"})
_OPF = "{http://www.idpf.org/2007/opf}"
_DC = "{http://purl.org/dc/elements/1.1/}"


def extract_epub(path: str, name: str) -> Content:
    """The text of the EPUB at ``path``: its spine's documents in reading order, a blank
    line between them; ``extra={"chapters": n}`` counts the documents read, and
    ``extra["notes"]`` names spine documents that are missing.

    Raises `EncryptedDocument` for a book under DRM, `SuspiciousArchive` for a zip bomb,
    and `CorruptDocument` when the container or package document is missing or unreadable.
    """
    try:
        with open_package(path, name) as package:
            members = set(package.namelist())
            opf_path = _package_document(parse_xml(read_member(package, _CONTAINER, name), name), name)
            opf = parse_xml(read_member(package, opf_path, name), name)
            spine = _spine(opf, posixpath.dirname(opf_path))
            if _ENCRYPTION in members:
                _refuse_encrypted(parse_xml(read_member(package, _ENCRYPTION, name), name), spine, name)
            chapters: list[str] = []
            missing: list[str] = []
            for member in spine:
                if member not in members:
                    missing.append(member)
                    continue
                chapters.append(extract_html(read_member(package, member, name), name).text)
    # A damaged entry fails only when it is read: a bad CRC, bad deflate data, a cut-off file.
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise CorruptDocument(f"corrupt: {name}: a damaged ZIP entry ({error})") from error
    extra: dict[str, object] = {"chapters": len(chapters)}
    if missing:
        extra["notes"] = [f"missing from the package, left out: {member}" for member in missing]
    metadata = opf.find("{*}metadata")
    return Content(
        text="\n\n".join(chapter.strip("\n") for chapter in chapters if chapter.strip()),
        extractor=EXTRACTOR,
        title=clean_title(_first(metadata, f"{_DC}title")),
        author=clean_title(", ".join(_texts(metadata, f"{_DC}creator"))),
        created=_date(metadata),
        extra=extra,
    )


def _package_document(container: Any, name: str) -> str:
    """The path of the OPF that container.xml names (the first, if it names several renditions)."""
    rootfiles = container.findall(".//{*}rootfile")
    for rootfile in sorted(rootfiles, key=lambda rootfile: rootfile.get("media-type") != _OPF_TYPE):
        if full_path := rootfile.get("full-path"):
            return str(full_path)
    raise CorruptDocument(f"corrupt: {name}: {_CONTAINER} names no package document")


def _spine(opf: Any, base: str) -> list[str]:
    """The package members of the spine's (X)HTML documents, in reading order."""
    manifest = {
        item.get("id"): (item.get("href") or "", item.get("media-type") or "")
        for item in opf.iterfind("{*}manifest/{*}item")
    }
    members: list[str] = []
    for itemref in opf.iterfind("{*}spine/{*}itemref"):
        href, media_type = manifest.get(itemref.get("idref"), ("", ""))
        if href and media_type in _HTML_TYPES:
            members.append(_member(base, href))
    return list(dict.fromkeys(members))  # a document listed twice is read once


def _member(base: str, href: str) -> str:
    """The package member an OPF ``href`` (relative, percent-encoded, maybe with a fragment) names."""
    return posixpath.normpath(posixpath.join(base, unquote(href.partition("#")[0])))


def _refuse_encrypted(encryption: Any, spine: list[str], name: str) -> None:
    # Each CipherReference URI is relative to the package's root.
    encrypted = {
        _member("", reference.get("URI") or "") for reference in encryption.iter("{*}CipherReference")
    }
    if encrypted & set(spine):
        raise EncryptedDocument(f"encrypted: {name} needs a password (its text is under DRM)")


def _texts(metadata: Any, tag: str) -> list[str]:
    if metadata is None:
        return []
    return [text for element in metadata.iter(tag) if (text := " ".join("".join(element.itertext()).split()))]


def _first(metadata: Any, tag: str) -> str | None:
    texts = _texts(metadata, tag)
    return texts[0] if texts else None


def _date(metadata: Any) -> str | None:
    """The book's date: the one marked as its creation (EPUB 2), else the first (its publication)."""
    if metadata is None:
        return None
    dates = list(metadata.iter(f"{_DC}date"))
    dates.sort(key=lambda date: date.get(f"{_OPF}event") != "creation")
    for date in dates:
        if created := iso_date("".join(date.itertext())):
            return created
    return None
