"""E-mail messages (RFC 822/MIME, .eml): a header block, the body as text, and the attachments.

The helpers after `extract_email` (`header_block`, `html_to_text`, `Attachments`, `message_content`)
are shared with the Outlook reader, so that both formats come out in the same shape.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email.utils
import mimetypes
import quopri
import re
from collections.abc import Callable, Mapping
from email import policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser

from docq.errors import CorruptDocument, PermanentError, ProcessingError
from docq.processing.content import Content, clean_title, describe, utc_iso
from docq.processing.html import extract_html
from docq.processing.text import decode

EXTRACTOR = "email"

Nested = Callable[[bytes, str, int], Content | None]
"""Reads an attachment: ``(its bytes, its file name, its depth)`` to its Content, or None when
its format is unsupported or it could not be read."""

MAX_DEPTH = 3
"""Attachments nested deeper than this (an attachment of an attached message...) are only listed."""
MAX_READ = 20
"""At most this many attachments of one message are read; the others are only listed."""
MAX_ATTACHMENT_TEXT = 10_000_000
"""At most this many characters of attachment text are appended to one message's text."""
MAX_LISTED = 500
"""At most this many attachments are listed in the metadata: it describes a message, not a disk."""

HEADER_FIELDS = ("From", "To", "Cc", "Date", "Subject")
_FORWARDED = frozenset({"message/rfc822", "message/global"})
_BODY_TYPES = frozenset({"text/plain", "text/html"})
# Labels that mailers write for what is in practice Windows-1252 (a superset of both).
_CHARSET_ALIASES = {"us-ascii": "cp1252", "ascii": "cp1252", "iso-8859-1": "cp1252", "latin1": "cp1252"}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def extract_email(data: bytes, name: str, *, nested: Nested | None = None, depth: int = 0) -> Content:
    """The text of an RFC 822 message: the `header_block`, a blank line, the body, then the text
    of each attachment `nested` can read under a ``--- attachment: <name> ---`` line.

    The body is the text/plain part, else the text/html part as text. Title, author and
    created come from Subject, From and Date; ``extra["attachments"]`` lists every attachment,
    ``extra["notes"]`` says what the bounds left out. A forwarded message is an attachment
    read through ``nested`` too. ``depth`` is this message's own nesting depth (0 for a file).
    Raises `CorruptDocument` when the bytes hold no message.
    """
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        if not message.keys():
            raise CorruptDocument(f"corrupt: {name}: no header fields, so no e-mail message")
        fields = {key: _header(message, key) for key in HEADER_FIELDS}
        body_parts, attached = _sort_parts(message)
    except (ProcessingError, OSError, MemoryError):
        raise
    except RecursionError as error:
        raise CorruptDocument(f"corrupt: {name}: MIME parts nested too deeply") from error
    # The parser is lenient and records defects instead of raising; what it does raise means "corrupt".
    except Exception as error:
        raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error

    body = "\n\n".join(text for part in body_parts if (text := _part_text(part, name).strip()))
    attachments = Attachments(nested, depth)
    for part in attached:
        _add_attachment(attachments, part, name)
    encrypted = _encrypted(message)
    if encrypted:
        attachments.notes.append("the body is encrypted (S/MIME or OpenPGP) and was not read")
    return message_content(
        fields, body, attachments, created=_date(message, fields["Date"]), encrypted=encrypted
    )


def header_block(fields: Mapping[str, str | None]) -> str:
    """``Name: value`` lines for the fields that have a value, in `HEADER_FIELDS` order."""
    return "\n".join(f"{key}: {value}" for key in HEADER_FIELDS if (value := fields.get(key)))


def html_to_text(html: str, name: str) -> str:
    """Already decoded HTML as readable text, whatever charset its ``<meta>`` claims."""
    # A UTF-8 byte order mark outranks a <meta charset> in `extract_html`'s decoding.
    return extract_html(codecs.BOM_UTF8 + html.encode("utf-8", "replace"), name).text


def clean_text(text: str) -> str:
    """``text`` with ``\\n`` line ends and no control characters other than tab and newline."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def decode_text(data: bytes, charset: str | None, name: str) -> str:
    """``data`` in its declared ``charset``; in a guessed encoding when that is wrong or missing."""
    if charset:
        try:
            return data.decode(_CHARSET_ALIASES.get(charset.lower(), charset))
        except (LookupError, ValueError):  # unknown label, or bytes that are not in it
            pass
    try:
        return decode(data, name)[0]
    except CorruptDocument:  # binary junk in a text part: keep what reads
        return data.decode("utf-8", "replace")


class Attachments:
    """Lists a message's attachments and appends the text of those that can be read, within the
    `MAX_DEPTH`, `MAX_READ` and `MAX_ATTACHMENT_TEXT` bounds, noting what was left out."""

    def __init__(self, nested: Nested | None, depth: int) -> None:
        self.listed: list[dict[str, object]] = []
        self.sections: list[str] = []
        self.notes: list[str] = []
        self._nested = nested
        self._depth = depth
        self._budget = MAX_ATTACHMENT_TEXT
        self._read = self._unlisted = self._too_deep = self._too_many = self._over_budget = 0

    def add(
        self,
        filename: str | None,
        mime_type: str,
        size: int,
        data: bytes | None,
        *,
        label: str | None = None,
        reader: Callable[[int], Content | None] | None = None,
    ) -> None:
        """List an attachment and read it: with ``reader(depth)`` if given, else ``data`` with `nested`.

        ``label`` names it when read (its heading, the name `nested` gets); by default its
        ``filename``, or a name made up from its type.
        """
        if len(self.listed) < MAX_LISTED:
            self.listed.append({"name": filename, "type": mime_type, "size": size})
        else:
            self._unlisted += 1
        label = label or filename or _made_up_name(mime_type, len(self.listed) + self._unlisted)
        if reader is None and self._nested is not None and data is not None:
            nested = self._nested
            reader = lambda depth: nested(data, label, depth)  # noqa: E731
        if reader is None:
            return
        if self._depth >= MAX_DEPTH:
            self._too_deep += 1
        elif self._read >= MAX_READ:
            self._too_many += 1
        elif self._budget <= 0:
            self._over_budget += 1
        else:
            self._read += 1
            self._append(label, reader)

    def _append(self, label: str, reader: Callable[[int], Content | None]) -> None:
        try:
            content = reader(self._depth + 1)
        except PermanentError as error:  # one bad attachment does not spoil the message
            self.notes.append(f"attachment {label} was not read: {error}")
            return
        if content is None:
            return
        notes = content.extra.get("notes")
        if isinstance(notes, list):
            self.notes.extend(f"{label}: {note}" for note in notes)
        text = clean_text(content.text).strip()
        if not text:
            return
        if len(text) > self._budget:
            text = text[: self._budget]
            self.notes.append(f"the text of attachment {label} was cut at the attachment text limit")
        self._budget -= len(text)
        self.sections.append(f"--- attachment: {label} ---\n{text}")

    def extra(self) -> dict[str, object]:
        """``attachments`` and ``notes`` for `Content.extra`."""
        notes = list(self.notes)
        if self._too_deep:
            notes.append(f"{self._too_deep} attachments nested more than {MAX_DEPTH} deep were not read")
        if self._too_many:
            notes.append(f"{self._too_many} attachments beyond the first {MAX_READ} were not read")
        if self._over_budget:
            notes.append(
                f"{self._over_budget} attachments were not read: the attachment text limit "
                f"of {MAX_ATTACHMENT_TEXT:,} characters was reached"
            )
        if self._unlisted:
            notes.append(f"{self._unlisted} attachments beyond the first {MAX_LISTED} are not listed")
        extra: dict[str, object] = {"attachments": self.listed}
        if notes:
            extra["notes"] = notes
        return extra


def message_content(
    fields: Mapping[str, str | None],
    body: str,
    attachments: Attachments,
    *,
    created: str | None,
    extractor: str = EXTRACTOR,
    encrypted: bool = False,
) -> Content:
    """The `Content` of a message: header block, body and attachment sections, blank-line separated."""
    # Mailers double line ends (CRLF read as two); more than one blank line in a row says nothing.
    body = _BLANK_LINES.sub("\n\n", clean_text(body)).strip()
    blocks = (header_block(fields), body, *attachments.sections)
    return Content(
        text="\n\n".join(block for block in blocks if block),
        extractor=extractor,
        title=clean_title(fields.get("Subject")),
        author=clean_title(fields.get("From")),
        created=created,
        encrypted=encrypted,
        extra=attachments.extra(),
    )


def _header(message: Message, key: str) -> str | None:
    try:
        value = str(message[key]) if key in message else None
    # The strict header grammar chokes on some real headers: show those as written.
    except Exception:
        value = _raw_header(message, key)
    return clean_title(_SPACES.sub(" ", _CONTROL.sub("", value))) if value else None


def _raw_header(message: Message, key: str) -> str | None:
    for field, raw in message.raw_items():
        if field.lower() == key.lower():
            try:
                return str(make_header(decode_header(raw)))
            except Exception:  # a broken encoded word: keep the raw text
                return raw
    return None


def _date(message: Message, shown: str | None) -> str | None:
    try:
        moment = getattr(message["Date"], "datetime", None)
        if moment is None and shown:
            moment = email.utils.parsedate_to_datetime(shown)
    except Exception:  # no date that parses: the message is undated
        return None
    return utc_iso(moment)


def _sort_parts(message: Message) -> tuple[list[Message], list[Message]]:
    """The parts that make up the body, and the attachments, in message order.

    Of a multipart/alternative, only one alternative counts as body: the text/plain one, else
    the last (the richest). Attachments with a file name in the others are still listed.
    """
    body: list[Message] = []
    attached: list[Message] = []
    stack: list[tuple[Message, bool]] = [(message, True)]  # an explicit stack: MIME nests deeply
    while stack:
        part, wanted = stack.pop()
        kind = part.get_content_type()
        if kind in _FORWARDED or (part.is_multipart() and part.get_content_maintype() != "multipart"):
            attached.append(part)
        elif part.is_multipart():
            children = [child for child in part.get_payload() if isinstance(child, Message)]
            chosen = _alternative(children) if kind == "multipart/alternative" else None
            for index in reversed(range(len(children))):
                stack.append((children[index], wanted and chosen in (None, index)))
        else:
            filename = _filename(part)
            if kind in _BODY_TYPES and part.get_content_disposition() != "attachment" and not filename:
                if wanted:
                    body.append(part)
            elif wanted or filename:
                attached.append(part)
    return body, attached


def _alternative(children: list[Message]) -> int | None:
    for index, child in enumerate(children):
        if child.get_content_type() == "text/plain" and child.get_content_disposition() != "attachment":
            return index
    return len(children) - 1 if children else None


def _part_text(part: Message, name: str) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    text = decode_text(data, part.get_content_charset(), name)
    return html_to_text(text, name) if part.get_content_type() == "text/html" else clean_text(text)


def _add_attachment(attachments: Attachments, part: Message, name: str) -> None:
    kind = part.get_content_type()
    filename = _filename(part)
    if kind in _FORWARDED:
        inner = part.get_payload(0) if part.get_payload() else None
        if not isinstance(inner, Message):
            attachments.add(filename, kind, 0, None)
            return
        data = _forwarded_bytes(part, inner)
        # A forwarded message seldom has a file name; its subject says what it is.
        label = filename or f"{_header(inner, 'Subject') or 'message'}.eml".replace("/", "_")
        attachments.add(filename, kind, len(data or b""), data, label=label)
        return
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else None
    attachments.add(filename, kind, len(data or b""), data)


def _filename(part: Message) -> str | None:
    try:
        filename = part.get_filename()
    except Exception:  # a malformed parameter: the attachment is listed unnamed
        return None
    if not filename:
        return None
    # Encoded words and RFC 2231 are decoded by the parser; paths are no part of a name.
    return clean_title(_CONTROL.sub("", filename.replace("\\", "/").rsplit("/", 1)[-1]))


def _forwarded_bytes(part: Message, inner: Message) -> bytes | None:
    """The attached message's source again, undoing a transfer encoding that should not be there."""
    try:
        data = inner.as_bytes(policy=policy.compat32)
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding == "base64":
            return base64.b64decode(data)
        if encoding == "quoted-printable":
            return quopri.decodestring(data)
    # A message the generator cannot write back (or decode) is listed, not read.
    except (binascii.Error, ValueError, RecursionError, LookupError, TypeError):
        return None
    return data


def _encrypted(message: Message) -> bool:
    kind = message.get_content_type()
    if kind == "multipart/encrypted":
        return True
    smime = str(message.get_param("smime-type", "")).lower()
    return kind in ("application/pkcs7-mime", "application/x-pkcs7-mime") and smime == "enveloped-data"


def _made_up_name(mime_type: str, number: int) -> str:
    return f"attachment-{number}{mimetypes.guess_extension(mime_type) or ''}"
