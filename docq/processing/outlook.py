"""Outlook messages (.msg): read with olefile into the same shape as an e-mail (see `mail`).

A .msg file is an OLE2 compound file. Each MAPI property of the message is a stream named
``__substg1.0_IIIITTTT`` (property id, type) or an 8-byte value in ``__properties_version1.0``;
attachments are ``__attach_version1.0_#N`` storages, and an attached message is a message
storage again (``__substg1.0_3701000D``) [MS-OXMSG].
"""

from __future__ import annotations

import codecs
import datetime as dt
import email.utils
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

import olefile
from olefile.olefile import OleFileError
from striprtf.striprtf import rtf_to_text

from docq.errors import CorruptDocument, UnsupportedType
from docq.processing.content import Content, describe, utc_iso
from docq.processing.detect import OLE_MAGIC
from docq.processing.html import extract_html
from docq.processing.mail import (
    MAX_DEPTH,
    Attachments,
    Nested,
    decode_text,
    extract_email,
    html_to_text,
    message_content,
)

EXTRACTOR = "olefile"

_UNICODE, _STRING8, _BINARY, _OBJECT = 0x001F, 0x001E, 0x0102, 0x000D
_SUBJECT, _SENDER_NAME, _SENDER_EMAIL, _SENDER_SMTP = 0x0037, 0x0C1A, 0x0C1F, 0x5D01
_REPRESENTING_NAME, _REPRESENTING_EMAIL, _DISPLAY_TO, _DISPLAY_CC = 0x0042, 0x0065, 0x0E04, 0x0E03
_BODY, _HTML, _RTF, _MESSAGE_CLASS = 0x1000, 0x1013, 0x1009, 0x001A
_ATTACH_DATA, _ATTACH_LONG_NAME, _ATTACH_NAME, _ATTACH_DISPLAY_NAME = 0x3701, 0x3707, 0x3704, 0x3001
_ATTACH_MIME = 0x370E
# Fixed-size values in the property stream: (id << 16) | type.
_SUBMIT_TIME, _DELIVERY_TIME, _CREATION_TIME = 0x00390040, 0x0E060040, 0x30070040
_MESSAGE_CODEPAGE, _INTERNET_CODEPAGE, _ATTACH_METHOD = 0x3FFD0003, 0x3FDE0003, 0x37050003
_EMBEDDED_MESSAGE = 5
# The property stream's header: 32 bytes in a .msg file, 24 in an attached message, 8 elsewhere.
_TOP_HEADER, _EMBEDDED_HEADER, _ATTACHMENT_HEADER = 32, 24, 8
# Code pages whose Python codec is not simply "cp<number>".
_CODECS = {20127: "ascii", 28591: "latin-1", 28605: "iso8859-15", 65001: "utf-8", 1200: "utf-16-le"}
_CODECS |= {50220: "iso2022_jp", 51932: "euc_jp", 54936: "gb18030", 20866: "koi8_r", 21866: "koi8_u"}
_CODECS |= {number: f"iso8859-{number - 28590}" for number in range(28592, 28600)}
_WAY_OUT = "convert it to .eml, or read it with a custom --operation"


@dataclass
class _Attachment:
    filename: str | None
    mime_type: str
    size: int
    data: bytes | None
    message: _Message | None = None


@dataclass
class _Message:
    fields: dict[str, str | None]
    body: str
    created: str | None
    encrypted: bool
    attachments: list[_Attachment] = field(default_factory=list)


def extract_msg(path: str, name: str, *, nested: Nested | None = None, depth: int = 0) -> Content:
    """The text of the Outlook message at ``path``, shaped as `mail.extract_email` shapes an e-mail.

    The body is the plain text body, else the HTML body, else the compressed RTF body as
    text. Attached messages are read here, other attachments through ``nested``, within
    the `mail` bounds. Raises `CorruptDocument` for a damaged file, and `UnsupportedType`
    for an OLE2 file that holds no message or a body docq cannot read.
    """
    with open(path, "rb") as stream:
        return _extract(stream, name, nested, depth)


def extract_msg_bytes(data: bytes, name: str, *, nested: Nested | None = None, depth: int = 0) -> Content:
    """`extract_msg` for a message held in memory, such as an attachment."""
    return _extract(io.BytesIO(data), name, nested, depth)


def _extract(stream: BinaryIO, name: str, nested: Nested | None, depth: int) -> Content:
    if stream.read(len(OLE_MAGIC)) != OLE_MAGIC:
        raise CorruptDocument(f"corrupt: {name}: not an OLE2 file, so no Outlook message")
    stream.seek(0)
    try:
        with olefile.OleFileIO(stream) as ole:
            if not ole.exists("__properties_version1.0"):
                raise UnsupportedType(
                    f"unsupported type application/vnd.ms-outlook: {name}: an OLE2 file "
                    f"with no Outlook message in it; {_WAY_OUT}"
                )
            message = _Reader(ole, name).message("", _TOP_HEADER, MAX_DEPTH - depth)
    # olefile reports damage as OleFileError (an OSError) or whatever failed while parsing.
    except OleFileError as error:
        raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    except (OSError, MemoryError, UnsupportedType, CorruptDocument):
        raise
    except Exception as error:
        raise CorruptDocument(f"corrupt: {name}: {describe(error)}") from error
    return _content(message, nested, depth)


def _content(message: _Message, nested: Nested | None, depth: int) -> Content:
    attachments = Attachments(nested, depth)
    for item in message.attachments:
        if item.message is not None:
            subject = item.message.fields.get("Subject")
            label = item.filename or f"{subject or 'message'}.msg".replace("/", "_")
            reader = _embedded_reader(item.message, nested)
            attachments.add(item.filename, item.mime_type, item.size, None, label=label, reader=reader)
        else:
            attachments.add(item.filename, item.mime_type, item.size, item.data)
    if message.encrypted:
        attachments.notes.append("the body is encrypted (S/MIME) and was not read")
    return message_content(
        message.fields,
        message.body,
        attachments,
        created=message.created,
        extractor=EXTRACTOR,
        encrypted=message.encrypted,
    )


def _embedded_reader(message: _Message, nested: Nested | None) -> Callable[[int], Content]:
    return lambda depth: _content(message, nested, depth)


def _signed_body(data: bytes | None, name: str) -> str:
    """The text of a clear-signed message's MIME source (its smime.p7m attachment)."""
    if not data:
        return ""
    try:
        return extract_email(data, name).text
    except CorruptDocument:
        return ""


class _Reader:
    """Reads messages out of one open .msg file."""

    def __init__(self, ole: olefile.OleFileIO, name: str) -> None:
        self._ole = ole
        self._name = name
        # Lower case: OLE2 names compare without case, and writers differ in the case of hex digits.
        self._streams = ["/".join(entry).lower() for entry in ole.listdir(streams=True, storages=False)]
        self._storages = ["/".join(entry).lower() for entry in ole.listdir(streams=False, storages=True)]

    def message(self, prefix: str, header: int, levels: int) -> _Message:
        """The message stored under ``prefix``, with its attached messages ``levels`` deep."""
        values = self._values(prefix, header)
        codec = _codec(values.get(_MESSAGE_CODEPAGE)) or "cp1252"

        def text(prop: int) -> str | None:
            return self._string(prefix, prop, codec)

        sender = text(_SENDER_NAME) or text(_REPRESENTING_NAME)
        address = next((a for p in _ADDRESSES if "@" in (a := text(p) or "")), None)
        sender = sender or address
        moment = next((m for key in _TIMES if (m := _filetime(values.get(key)))), None)
        fields = {
            "From": f"{sender} <{address}>" if sender and address and sender != address else sender,
            "To": text(_DISPLAY_TO),
            "Cc": text(_DISPLAY_CC),
            "Date": email.utils.format_datetime(moment) if moment else None,
            "Subject": text(_SUBJECT),
        }
        kind = (text(_MESSAGE_CLASS) or "").upper()
        message = _Message(fields, "", utc_iso(moment), kind == "IPM.NOTE.SMIME")
        message.attachments = [self._attachment(path, levels, codec) for path in self._children(prefix)]
        message.body = self._body(prefix, codec, _codec(values.get(_INTERNET_CODEPAGE)))
        if not message.body.strip() and kind.startswith("IPM.NOTE.SMIME.MULTIPARTSIGNED"):
            # A signed message keeps its whole MIME source in its one attachment, smime.p7m.
            signed = next((a.data for a in message.attachments if a.data), None)
            message.body = _signed_body(signed, self._name)
        return message

    def _body(self, prefix: str, codec: str, html_codec: str | None) -> str:
        body = self._string(prefix, _BODY, codec)
        if body and body.strip():
            return body
        html = self._bytes(f"{prefix}__substg1.0_{_HTML:04X}{_BINARY:04X}")
        if html is not None and html_codec:
            return html_to_text(decode_text(html, html_codec, self._name), self._name)
        if html is not None:  # no code page: its <meta charset>, else a guess
            return extract_html(html, self._name).text
        if (html_string := self._string(prefix, _HTML, codec)) is not None:
            return html_to_text(html_string, self._name)
        rtf = self._bytes(f"{prefix}__substg1.0_{_RTF:04X}{_BINARY:04X}")
        if rtf is None:
            return body or ""
        try:
            rtf_source = decompress_rtf(rtf).decode("latin-1")
            return str(rtf_to_text(rtf_source, errors="replace"))  # type: ignore[no-untyped-call]
        except (ValueError, IndexError, struct.error) as error:
            raise UnsupportedType(
                f"unsupported type application/vnd.ms-outlook: {self._name}: its body is stored only "
                f"as RTF that docq cannot read ({describe(error)}); {_WAY_OUT}"
            ) from error

    def _attachment(self, storage: str, levels: int, codec: str) -> _Attachment:
        prefix = f"{storage}/"
        values = self._values(prefix, _ATTACHMENT_HEADER)

        def text(prop: int) -> str | None:
            return self._string(prefix, prop, codec)

        filename = text(_ATTACH_LONG_NAME) or text(_ATTACH_NAME) or text(_ATTACH_DISPLAY_NAME)
        mime_type = (text(_ATTACH_MIME) or "application/octet-stream").lower()
        inner = f"{prefix}__substg1.0_{_ATTACH_DATA:04X}{_OBJECT:04X}"
        if _long(values.get(_ATTACH_METHOD)) == _EMBEDDED_MESSAGE and self._ole.exists(inner):
            within = f"{inner}/".lower()
            size = sum(self._ole.get_size(p) for p in self._streams if p.startswith(within))
            message = None
            # One level more than is read: the deepest attachments are then listed as "too deep".
            if levels >= 0:
                try:
                    message = self.message(f"{inner}/", _EMBEDDED_HEADER, levels - 1)
                except UnsupportedType:  # its body cannot be read: it is only listed
                    message = None
            return _Attachment(filename, "message/rfc822", size, None, message)
        data = self._bytes(f"{prefix}__substg1.0_{_ATTACH_DATA:04X}{_BINARY:04X}")
        return _Attachment(filename, mime_type, len(data or b""), data)

    def _children(self, prefix: str) -> list[str]:
        depth, start = prefix.count("/"), f"{prefix}__attach_version1.0_#".lower()
        return sorted(path for path in self._storages if path.startswith(start) and path.count("/") == depth)

    def _values(self, prefix: str, header: int) -> dict[int, bytes]:
        data = self._bytes(f"{prefix}__properties_version1.0") or b""
        # 16-byte entries: tag (type, id), flags, then the value or, for variable sizes, its size.
        return {
            int.from_bytes(data[at : at + 4], "little"): data[at + 8 : at + 16]
            for at in range(header, len(data) - 15, 16)
        }

    def _string(self, prefix: str, prop: int, codec: str) -> str | None:
        data = self._bytes(f"{prefix}__substg1.0_{prop:04X}{_UNICODE:04X}")
        if data is not None:
            return data.decode("utf-16-le", "replace").rstrip("\x00")
        data = self._bytes(f"{prefix}__substg1.0_{prop:04X}{_STRING8:04X}")
        return None if data is None else decode_text(data.rstrip(b"\x00"), codec, self._name)

    def _bytes(self, path: str) -> bytes | None:
        if not self._ole.exists(path) or self._ole.get_type(path) != olefile.STGTY_STREAM:
            return None
        with self._ole.openstream(path) as stream:
            data: bytes = stream.read()
        return data


_ADDRESSES = (_SENDER_SMTP, _SENDER_EMAIL, _REPRESENTING_EMAIL)  # the first with an "@" is SMTP
_TIMES = (_SUBMIT_TIME, _DELIVERY_TIME, _CREATION_TIME)


def _long(value: bytes | None) -> int | None:
    return int.from_bytes(value[:4], "little") if value and len(value) >= 4 else None


def _codec(value: bytes | None) -> str | None:
    """The Python codec of a Windows code page property, if Python has one."""
    number = _long(value)
    if not number:
        return None
    codec = _CODECS.get(number, f"cp{number}")
    try:
        return codecs.lookup(codec).name
    except LookupError:
        return None


def _filetime(value: bytes | None) -> dt.datetime | None:
    """A FILETIME (100-nanosecond ticks since 1601, UTC) as a datetime; None if zero or absurd."""
    ticks = int.from_bytes(value, "little") if value and len(value) == 8 else 0
    if not ticks:
        return None
    try:
        return dt.datetime(1601, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


# The dictionary an LZFu stream starts from [MS-OXRTFCP 2.1.3.1.1].
_RTF_PREBUF = (
    b"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern \\fscript "
    b"\\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0\\blue0"
    b"\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx"
)
_LZFU, _MELA = 0x75465A4C, 0x414C454D
_RTF_LIMIT = 64 * 1024 * 1024


def decompress_rtf(data: bytes) -> bytes:
    """A compressed RTF stream (PR_RTF_COMPRESSED) as RTF; ValueError if it is not one."""
    if len(data) < 16:
        raise ValueError("compressed RTF shorter than its header")
    size, raw_size, kind = struct.unpack_from("<III", data)
    if kind == _MELA:  # stored uncompressed
        return data[16 : 16 + raw_size]
    if kind != _LZFU:
        raise ValueError(f"unknown RTF compression {kind:#010x}")
    window = bytearray(4096)
    window[: len(_RTF_PREBUF)] = _RTF_PREBUF
    position = len(_RTF_PREBUF)
    out = bytearray()
    source, at, end = data, 16, min(len(data), size + 4)  # the size counts from the 5th byte
    limit = min(raw_size, _RTF_LIMIT)
    while at < end and len(out) < limit:
        flags = source[at]
        at += 1
        for bit in range(8):
            if at >= end:
                break
            if not flags >> bit & 1:
                window[position] = source[at]
                out.append(source[at])
                position = (position + 1) % 4096
                at += 1
                continue
            (word,) = struct.unpack_from(">H", source, at)  # 12-bit window offset, 4-bit length - 2
            at += 2
            offset, length = word >> 4, (word & 0xF) + 2
            if offset == position:  # the end marker
                return bytes(out)
            # Byte by byte: a reference may overlap the bytes it is writing (a run).
            for index in range(length):
                byte = window[(offset + index) % 4096]
                window[position] = byte
                out.append(byte)
                position = (position + 1) % 4096
    return bytes(out[:limit])
