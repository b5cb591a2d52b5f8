"""E-mail (.eml) and Outlook (.msg) extraction: text, metadata, attachments, and their bounds.

Messages are built here: .eml with the standard library's `EmailMessage`, .msg with a small
OLE2 compound file writer (olefile only reads), so the expected text is known exactly.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import time
from collections import Counter
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path

import pytest

from docq.errors import CorruptDocument, PermanentError, UnsupportedType
from docq.processing import mail
from docq.processing.content import Content
from docq.processing.mail import MAX_DEPTH, MAX_LISTED, MAX_READ, extract_email
from docq.processing.outlook import decompress_rtf, extract_msg, extract_msg_bytes

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "textract"


def words(text: str) -> list[str]:
    return text.split()


def f1(expected: str, actual: str) -> float:
    """Word-level F1 of two texts, counting repeated words."""
    want, got = Counter(words(expected)), Counter(words(actual))
    common = sum((want & got).values())
    if not common:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def read_nested(data: bytes, name: str, depth: int) -> Content | None:
    """What the integrator's function does, for the formats these tests attach."""
    if name.endswith(".txt"):
        return Content(text=data.decode("utf-8"), extractor="test")
    if name.endswith(".eml"):
        return extract_email(data, name, nested=read_nested, depth=depth)
    if name.endswith(".msg"):
        return extract_msg_bytes(data, name, nested=read_nested, depth=depth)
    if name.endswith(".bad"):
        raise CorruptDocument(f"corrupt: {name}: broken on purpose")
    return None


def message(
    subject: str = "Quarterly figures", body: str | None = "Hello Ann,\nthe figures."
) -> EmailMessage:
    built = EmailMessage()
    built["From"] = "Bob Smith <bob@example.com>"
    built["To"] = "Ann Lee <ann@example.com>"
    built["Cc"] = "carl@example.com"
    built["Date"] = "Tue, 02 Jan 2024 10:30:00 +0100"
    built["Subject"] = subject
    if body is not None:
        built.set_content(body)
    return built


# --- E-mail --------------------------------------------------------------------


def test_plain_message_gives_header_block_then_body() -> None:
    content = extract_email(message().as_bytes(), "m.eml")
    assert content.text == (
        "From: Bob Smith <bob@example.com>\nTo: Ann Lee <ann@example.com>\nCc: carl@example.com\n"
        "Date: Tue, 02 Jan 2024 10:30:00 +0100\nSubject: Quarterly figures\n\nHello Ann,\nthe figures."
    )
    assert content.title == "Quarterly figures"
    assert content.author == "Bob Smith <bob@example.com>"
    assert content.created == "2024-01-02T09:30:00+00:00"
    assert content.extra == {"attachments": []}


def test_html_only_message_is_read_as_text() -> None:
    built = message(body=None)
    built.set_content("<html><head><style>p {color: red}</style></head><body><p>Dear Ann</p>"
                      "<p>See <b>the</b> figures</p></body></html>", subtype="html")  # fmt: skip
    text = extract_email(built.as_bytes(), "m.eml").text
    assert text.split("\n\n", 1)[1] == "Dear Ann\n\nSee the figures"


def test_alternative_prefers_plain_text_and_reads_it_once() -> None:
    built = message(body="plain words only")
    built.add_alternative("<p>html words only</p>", subtype="html")
    content = extract_email(built.as_bytes(), "m.eml")
    assert content.text.endswith("\n\nplain words only")
    assert "html" not in content.text
    assert content.extra == {"attachments": []}


@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1"])
@pytest.mark.parametrize("cte", ["quoted-printable", "base64"])
def test_transfer_encodings_and_charsets_are_decoded(charset: str, cte: str) -> None:
    body = "Crème brûlée à Zürich, naïve façade\nsecond line"
    built = message(subject="Café résumé")
    built.set_content(body, charset=charset, cte=cte)
    data = built.as_bytes()
    assert "brûlée".encode() not in data and b"Caf\xc3" not in data  # really encoded
    content = extract_email(data, "m.eml")
    assert content.text.endswith("\n\n" + body)
    assert content.title == "Café résumé"


def test_rfc2047_headers_are_decoded() -> None:
    data = (
        b"From: =?iso-8859-1?Q?Ren=E9_Dupr=E9?= <rene@example.fr>\n"
        b"To: =?utf-8?B?w4VzYQ==?= <asa@example.se>\n"
        b"Subject: =?utf-8?B?0J/RgNC40LLQtdGCINC80LjRgA==?= =?utf-8?Q?_and_more?=\n"
        b"Date: Wed, 03 Jan 2024 23:15:00 -0500\n\nbody\n"
    )
    content = extract_email(data, "m.eml")
    assert content.title == "Привет мир and more"
    assert content.author == "René Dupré <rene@example.fr>"
    assert "To: Åsa <asa@example.se>" in content.text
    assert content.created == "2024-01-04T04:15:00+00:00"


def test_wrong_or_unknown_charsets_do_not_crash() -> None:
    data = (
        b"From: a@example.com\nSubject: charsets\nContent-Type: multipart/mixed; boundary=B\n\n"
        b"--B\nContent-Type: text/plain; charset=utf-8\n\nna\xefve caf\xe9 wrongly declared\n"
        b"--B\nContent-Type: text/plain; charset=x-no-such-charset\n\nunknown label\n"
        b"--B\nContent-Type: text/plain; charset=rot13\n\nnot a text codec\n--B--\n"
    )
    text = extract_email(data, "m.eml").text
    assert "naïve café wrongly declared" in text
    assert "unknown label" in text and "not a text codec" in text


def test_malformed_message_still_gives_its_text() -> None:
    data = (
        b"From: <<broken@@>>\r\nTo: ,,,\r\nDate: the day after tomorrow\r\nSubject: broken\x01 one\r\n"
        b"Content-Type: multipart/mixed; boundary=OUTER\r\n\r\n--OUTER\r\n"
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gd29ybGQ=\r\n"
        b"--OUTER\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64 at all\r\n"  # and no closing boundary
    )
    content = extract_email(data, "m.eml")
    assert content.title == "broken one"
    assert content.created is None
    assert content.text.endswith("\n\nhello world")
    assert "\r" not in content.text and "\x01" not in content.text
    [listed] = content.extra["attachments"]  # type: ignore[misc]
    assert (listed["name"], listed["type"]) == ("x.pdf", "application/pdf")  # its size: what decoded


def test_bytes_without_headers_are_corrupt() -> None:
    with pytest.raises(CorruptDocument, match=r"corrupt: junk\.eml: no header fields"):
        extract_email(b"\x00\x01\x02 just bytes \xff\xfe", "junk.eml")


def test_deep_mime_nesting_is_corrupt_not_a_crash() -> None:
    levels = "".join(f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(3000))
    data = f"Subject: deep\n{levels}Content-Type: text/plain\n\nhello\n".encode()
    with pytest.raises(CorruptDocument, match="nested too deeply"):
        extract_email(data, "deep.eml")


def attached_message() -> EmailMessage:
    built = message(body="See the attached files.")
    built.add_attachment(b"Figures: 1, 2, 3.\n", maintype="text", subtype="plain", filename="figures.txt")
    built.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="résumé.pdf")
    built.add_attachment(
        b"\x89PNG\r\n", maintype="image", subtype="png", filename="logo.png", disposition="inline"
    )
    return built


def test_attachments_are_listed_and_readable_ones_appended() -> None:
    content = extract_email(attached_message().as_bytes(), "m.eml", nested=read_nested)
    assert content.extra == {
        "attachments": [
            {"name": "figures.txt", "type": "text/plain", "size": 18},
            {"name": "résumé.pdf", "type": "application/pdf", "size": 19},
            {"name": "logo.png", "type": "image/png", "size": 6},
        ]
    }
    assert content.text.endswith(
        "See the attached files.\n\n--- attachment: figures.txt ---\nFigures: 1, 2, 3."
    )


def test_without_nested_attachments_are_only_listed() -> None:
    content = extract_email(attached_message().as_bytes(), "m.eml")
    assert content.text.endswith("See the attached files.")
    assert len(content.extra["attachments"]) == 3  # type: ignore[arg-type]


def test_encoded_attachment_names_are_decoded() -> None:
    data = (
        b"From: a@example.com\nSubject: names\nContent-Type: multipart/mixed; boundary=B\n\n--B\n\nbody\n"
        b"--B\nContent-Type: text/plain\n"
        b'Content-Disposition: attachment; filename="=?utf-8?B?w6l0w6kudHh0?="\n\nsummer\n'
        b"--B\nContent-Type: text/plain\n"
        b"Content-Disposition: attachment; filename*=utf-8''hiver%20%C3%A0%20Paris.txt\n\nwinter\n"
        b"--B\nContent-Type: text/plain\n"
        b'Content-Disposition: attachment; filename="C:\\\\temp\\\\path.txt"\n\npath\n--B--\n'
    )
    content = extract_email(data, "m.eml", nested=read_nested)
    names = [item["name"] for item in content.extra["attachments"]]  # type: ignore[attr-defined]
    assert names == ["été.txt", "hiver à Paris.txt", "path.txt"]
    assert "--- attachment: été.txt ---\nsummer" in content.text
    assert "--- attachment: hiver à Paris.txt ---\nwinter" in content.text


def test_forwarded_message_is_read_as_an_email() -> None:
    built = message(body="Forwarding this.")
    built.add_attachment(attached_message())
    content = extract_email(built.as_bytes(), "m.eml", nested=read_nested)
    assert content.extra["attachments"][0]["type"] == "message/rfc822"  # type: ignore[index]
    section = content.text.split("--- attachment: Quarterly figures.eml ---\n", 1)[1]
    assert section.startswith("From: Bob Smith <bob@example.com>")
    assert "See the attached files.\n\n--- attachment: figures.txt ---\nFigures: 1, 2, 3." in section


def test_an_attachment_that_fails_leaves_a_note() -> None:
    built = message()
    built.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="broken.bad")
    content = extract_email(built.as_bytes(), "m.eml", nested=read_nested)
    assert content.text.endswith("the figures.")
    assert content.extra["notes"] == [
        "attachment broken.bad was not read: corrupt: broken.bad: broken on purpose"
    ]


def test_encrypted_message_gives_its_headers() -> None:
    data = (
        b"From: a@example.com\nSubject: secret\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; boundary=B\n\n'
        b"--B\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n"
        b"--B\nContent-Type: application/octet-stream\n\n-----BEGIN PGP MESSAGE-----\n--B--\n"
    )
    content = extract_email(data, "m.eml")
    assert content.encrypted
    assert content.text == "From: a@example.com\nSubject: secret"


def test_a_thousand_attachments_are_bounded() -> None:
    built = message()
    for number in range(1000):
        built.add_attachment(
            f"text {number}".encode(), maintype="text", subtype="plain", filename=f"{number}.txt"
        )
    calls: list[str] = []

    def counting(data: bytes, name: str, depth: int) -> Content | None:
        calls.append(name)
        return read_nested(data, name, depth)

    started = time.monotonic()
    content = extract_email(built.as_bytes(), "many.eml", nested=counting)
    assert time.monotonic() - started < 20
    assert len(calls) == MAX_READ
    assert len(content.extra["attachments"]) == MAX_LISTED  # type: ignore[arg-type]
    assert content.text.count("--- attachment:") == MAX_READ
    assert content.extra["notes"] == [
        f"{1000 - MAX_READ} attachments beyond the first {MAX_READ} were not read",
        f"{1000 - MAX_LISTED} attachments beyond the first {MAX_LISTED} are not listed",
    ]


def test_forwarding_nested_deeply_is_read_to_a_bounded_depth() -> None:
    inner = message(subject="level 0", body="body 0")
    for level in range(1, 12):
        outer = message(subject=f"level {level}", body=f"body {level}")
        outer.add_attachment(inner)
        inner = outer
    content = extract_email(inner.as_bytes(), "deep.eml", nested=read_nested)
    bodies = [word for word in words(content.text) if word.startswith("body")]
    assert len(bodies) == MAX_DEPTH + 1
    assert content.text.count("--- attachment:") == MAX_DEPTH
    assert content.extra["notes"] == [
        "level 10.eml: level 9.eml: level 8.eml: 1 attachments nested more than 3 deep were not read"
    ]


def test_attachment_text_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mail, "MAX_ATTACHMENT_TEXT", 30)
    built = message()
    for number in range(3):
        built.add_attachment(b"word " * 4, maintype="text", subtype="plain", filename=f"{number}.txt")
    content = extract_email(built.as_bytes(), "m.eml", nested=read_nested)
    # 19 characters of the first, the 11 left of the second ("word word w"), none of the third.
    assert content.text.endswith(
        "the figures.\n\n--- attachment: 0.txt ---\nword word word word\n\n"
        "--- attachment: 1.txt ---\nword word w"
    )
    assert content.extra["notes"] == [
        "the text of attachment 1.txt was cut at the attachment text limit",
        "1 attachments were not read: the attachment text limit of 30 characters was reached",
    ]


# --- Outlook .msg ----------------------------------------------------------------
# A compound file [MS-CFB] version 3: 512-byte sectors, streams under 4096 bytes in a mini stream.

_END, _FREE, _FAT_SECTOR, _NONE = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def compound_file(streams: Mapping[str, bytes]) -> bytes:
    """An OLE2 file holding ``streams`` (paths with "/"; storages are made as needed)."""
    entries: list[dict[str, object]] = [{"name": "Root Entry", "type": 5, "children": [], "data": b""}]
    index = {"": 0}
    for path in streams:
        parts = path.split("/")
        for depth in range(1, len(parts) + 1):
            sub = "/".join(parts[:depth])
            if sub not in index:
                leaf = depth == len(parts)
                entry = {"name": parts[-1 if leaf else depth - 1], "type": 2 if leaf else 1, "children": []}
                entry["data"] = streams[sub] if leaf else b""
                index[sub] = len(entries)
                entries.append(entry)
                entries[index["/".join(parts[: depth - 1])]]["children"].append(index[sub])  # type: ignore[attr-defined]
    sectors: list[bytes] = []
    fat: list[int] = []

    def allocate(data: bytes) -> int:
        start, count = len(sectors), math.ceil(len(data) / 512)
        for number in range(count):
            sectors.append(data[number * 512 : (number + 1) * 512].ljust(512, b"\0"))
            fat.append(start + number + 1 if number < count - 1 else _END)
        return start if count else _END

    mini = bytearray()
    mini_fat: list[int] = []
    for entry in entries[1:]:
        data = entry["data"]
        assert isinstance(data, bytes)
        if entry["type"] != 2:
            entry["start"] = 0
        elif len(data) >= 4096:
            entry["start"] = allocate(data)
        else:
            start, count = len(mini) // 64, max(1, math.ceil(len(data) / 64))
            mini += data.ljust(count * 64, b"\0")
            mini_fat += [start + number + 1 for number in range(count - 1)] + [_END]
            entry["start"] = start
    entries[0]["start"], entries[0]["data"] = allocate(bytes(mini)), bytes(mini)
    mini_fat += [_FREE] * (-len(mini_fat) % 128)
    mini_fat_start = allocate(struct.pack(f"<{len(mini_fat)}I", *mini_fat))

    def tree(ids: list[int]) -> int:  # a balanced binary search tree of one storage's children
        if not ids:
            return _NONE
        middle = len(ids) // 2
        entries[ids[middle]]["left"], entries[ids[middle]]["right"] = (
            tree(ids[:middle]),
            tree(ids[middle + 1 :]),
        )
        return ids[middle]

    for entry in entries:
        children = sorted(
            entry["children"], key=lambda i: (len(entries[i]["name"]), entries[i]["name"].upper())
        )  # type: ignore
        entry["child"] = tree(children)
    directory = b"".join(
        struct.pack(
            "<64sHBBIII16sIQQIQ",
            (encoded := f"{e['name']}".encode("utf-16-le") + b"\0\0"),
            len(encoded),
            e["type"],
            1,
            e.get("left", _NONE),
            e.get("right", _NONE),
            e["child"] if e["type"] != 2 else _NONE,
            b"",
            0,
            0,
            0,
            e["start"],
            len(e["data"]),  # type: ignore[arg-type]
        )
        for e in entries
    )
    directory += b"\0" * (-len(directory) % 512)
    directory_start = allocate(directory)
    fat_count = 1
    while fat_count * 128 < len(sectors) + fat_count:
        fat_count += 1
    fat_start = len(sectors)
    fat += [_FAT_SECTOR] * fat_count
    fat += [_FREE] * (fat_count * 128 - len(fat))
    sectors += [struct.pack("<128I", *fat[n * 128 : (n + 1) * 128]) for n in range(fat_count)]
    difat = [fat_start + n for n in range(fat_count)] + [_FREE] * (109 - fat_count)
    header = struct.pack(
        "<8s16sHHHHH6s9I109I",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        b"",
        0x3E,
        3,
        0xFFFE,
        9,
        6,
        b"",
        0,
        fat_count,
        directory_start,
        0,
        4096,
        mini_fat_start,
        len(mini_fat) // 128,
        _END,
        0,
        *difat,
    )
    return header + b"".join(sectors)


def filetime(moment: dt.datetime) -> int:
    return (moment - dt.datetime(1601, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1) * 10


def msg_streams(
    prefix: str = "",
    *,
    strings: Mapping[int, str],
    header: int = 32,
    values: Mapping[int, int] = {},
    binaries: Mapping[int, bytes] = {},
    codepage: str | None = None,
) -> dict[str, bytes]:
    """The streams of one message (or attachment): string properties, fixed values, binaries."""
    kind = "001E" if codepage else "001F"
    streams = {
        f"{prefix}__substg1.0_{prop:04X}{kind}": value.encode(codepage or "utf-16-le")
        for prop, value in strings.items()
    }
    streams |= {f"{prefix}__substg1.0_{prop:04X}0102": value for prop, value in binaries.items()}
    entries = b"".join(struct.pack("<IIQ", tag, 6, value) for tag, value in values.items())
    streams[f"{prefix}__properties_version1.0"] = b"\0" * header + entries
    return streams


SENT = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def outlook_message(
    prefix: str = "", header: int = 32, subject: str = "Budget 2024", **extra: str
) -> dict[str, bytes]:
    strings = {
        0x0037: subject,
        0x0C1A: "Dana Ruiz",
        0x0C1F: "/O=EXCHANGE/CN=DANA",
        0x5D01: "dana@example.com",
    }
    strings |= {0x0E04: "Eve Park; Finn Obi", 0x0E03: "Gus Tan", 0x1000: "Hello team,\r\nthe budget.\r\n"}
    return msg_streams(prefix, strings=strings, header=header, values={0x00390040: filetime(SENT)})


def attach(prefix: str, number: int, name: str, data: bytes, mime: str = "text/plain") -> dict[str, bytes]:
    return msg_streams(
        f"{prefix}__attach_version1.0_#{number:08X}/",
        strings={0x3707: name, 0x370E: mime},
        header=8,
        values={0x37050003: 1},
        binaries={0x3701: data},
    )


def write_msg(tmp_path: Path, streams: Mapping[str, bytes], name: str = "m.msg") -> str:
    path = tmp_path / name
    path.write_bytes(compound_file(streams))
    return str(path)


def test_msg_text_metadata_and_attachments(tmp_path: Path) -> None:
    streams = (
        outlook_message()
        | attach("", 0, "notes.txt", b"Item one.\nItem two.\n")
        | attach("", 1, "photo.jpg", b"\xff\xd8\xff", "image/jpeg")
    )
    content = extract_msg(write_msg(tmp_path, streams), "m.msg", nested=read_nested)
    assert content.text == (
        "From: Dana Ruiz <dana@example.com>\nTo: Eve Park; Finn Obi\nCc: Gus Tan\n"
        "Date: Mon, 06 May 2024 07:08:09 +0000\nSubject: Budget 2024\n\nHello team,\nthe budget.\n\n"
        "--- attachment: notes.txt ---\nItem one.\nItem two."
    )
    assert (content.title, content.author, content.created) == (
        "Budget 2024",
        "Dana Ruiz <dana@example.com>",
        "2024-05-06T07:08:09+00:00",
    )
    assert content.extractor == "olefile"
    assert content.extra == {
        "attachments": [
            {"name": "notes.txt", "type": "text/plain", "size": 20},
            {"name": "photo.jpg", "type": "image/jpeg", "size": 3},
        ]
    }


def test_msg_with_8_bit_strings_uses_its_code_page(tmp_path: Path) -> None:
    strings = {0x0037: "Отчёт за май", 0x0C1A: "Иван", 0x1000: "Привет, коллеги"}
    streams = msg_streams(strings=strings, codepage="cp1251", values={0x3FFD0003: 1251})
    content = extract_msg(write_msg(tmp_path, streams), "m.msg")
    assert content.title == "Отчёт за май"
    assert content.text == "From: Иван\nSubject: Отчёт за май\n\nПривет, коллеги"


def test_msg_html_body_when_there_is_no_plain_body(tmp_path: Path) -> None:
    html = "<html><head><meta charset='windows-1252'></head><body><p>Grüße</p><p>aus Köln</p></body></html>"
    streams = msg_streams(
        strings={0x0037: "html"}, binaries={0x1013: html.encode()}, values={0x3FDE0003: 65001}
    )
    assert extract_msg(write_msg(tmp_path, streams), "m.msg").text == "Subject: html\n\nGrüße\n\naus Köln"


def lzfu(rtf: bytes) -> bytes:
    """``rtf`` as an LZFu stream of literals only, ended by the end marker."""
    body = bytearray()
    for start in range(0, len(rtf), 8):
        body += b"\0" + rtf[start : start + 8]
    position = (207 + len(rtf)) % 4096
    if len(rtf) % 8:
        body[-(len(rtf) % 8) - 1] = 1 << (len(rtf) % 8)
    else:
        body += b"\x01"
    body += struct.pack(">H", position << 4)
    return struct.pack("<IIII", len(body) + 12, len(rtf), 0x75465A4C, 0) + bytes(body)


def test_rtf_decompression_matches_the_specification() -> None:
    # The two examples of [MS-OXRTFCP] 3.1.1 and 3.1.2: literals and references, then a run.
    first = bytes.fromhex("2d0000002b0000004c5a4675f1c5c7a703000a007263706731323542320af32068656c0900206277")
    assert decompress_rtf(first + bytes.fromhex("05b06c647d0a800fa0")) == (
        b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"
    )
    second = bytes.fromhex("1a0000001c0000004c5a4675e2d44b51410004205758595a0d6e7d010eb0")
    assert decompress_rtf(second) == b"{\\rtf1 WXYZWXYZWXYZWXYZWXYZ}"
    assert decompress_rtf(lzfu(b"{\\rtf1 abc}")) == b"{\\rtf1 abc}"
    with pytest.raises(ValueError, match="unknown RTF compression"):
        decompress_rtf(b"\0" * 16)


def test_msg_rtf_only_body(tmp_path: Path) -> None:
    rtf = b"{\\rtf1\\ansi\\ansicpg1252 {\\b Minutes} of the meeting\\par Caf\\'e9 at noon\\par}"
    streams = msg_streams(strings={0x0037: "rtf"}, binaries={0x1009: lzfu(rtf)})
    assert words(extract_msg(write_msg(tmp_path, streams), "m.msg").text) == words(
        "Subject: rtf Minutes of the meeting Café at noon"
    )
    broken = msg_streams(strings={0x0037: "rtf"}, binaries={0x1009: b"\0" * 16})
    with pytest.raises(UnsupportedType, match=r"application/vnd.ms-outlook: m.msg: .*--operation"):
        extract_msg(write_msg(tmp_path, broken), "m.msg")


def embedded(prefix: str, number: int, inner: dict[str, bytes]) -> dict[str, bytes]:
    storage = f"{prefix}__attach_version1.0_#{number:08X}/"
    streams = msg_streams(storage, strings={0x3001: "forwarded"}, header=8, values={0x37050003: 5})
    return streams | {f"{storage}__substg1.0_3701000D/{path}": data for path, data in inner.items()}


def test_msg_attached_message_is_read_and_depth_is_bounded(tmp_path: Path) -> None:
    inner = outlook_message(header=24, subject="level 0")
    for level in range(1, 6):
        inner = outlook_message(header=24, subject=f"level {level}") | embedded("", 0, inner)
    top = outlook_message(subject="top") | embedded("", 0, inner)
    content = extract_msg(write_msg(tmp_path, top), "m.msg", nested=read_nested)
    assert content.text.count("Hello team,") == MAX_DEPTH + 1
    assert "--- attachment: forwarded ---\nFrom: Dana Ruiz" in content.text
    [listed] = content.extra["attachments"]  # type: ignore[misc]
    assert listed["name"] == "forwarded" and listed["type"] == "message/rfc822" and listed["size"] > 0
    assert content.extra["notes"] == [
        "forwarded: " * MAX_DEPTH + f"1 attachments nested more than {MAX_DEPTH} deep were not read"
    ]


def test_msg_attached_as_bytes_goes_through_nested(tmp_path: Path) -> None:
    inner = compound_file(outlook_message(subject="inner"))
    streams = outlook_message() | attach("", 0, "inner.msg", inner, "application/vnd.ms-outlook")
    content = extract_msg(write_msg(tmp_path, streams), "m.msg", nested=read_nested)
    assert "--- attachment: inner.msg ---\nFrom: Dana Ruiz <dana@example.com>" in content.text
    assert "Subject: inner" in content.text


def test_not_ole_is_corrupt_and_other_ole_is_unsupported(tmp_path: Path) -> None:
    plain = tmp_path / "plain.msg"
    plain.write_bytes(b"From: a@example.com\n\nan e-mail named .msg")
    with pytest.raises(CorruptDocument, match=r"corrupt: plain\.msg: not an OLE2 file"):
        extract_msg(str(plain), "plain.msg")
    other = write_msg(tmp_path, {"WordDocument": b"\0" * 100}, "doc.msg")
    with pytest.raises(
        UnsupportedType, match=r"unsupported type application/vnd.ms-outlook: doc\.msg: .*--operation"
    ):
        extract_msg(other, "doc.msg")
    truncated = tmp_path / "cut.msg"
    truncated.write_bytes(compound_file(outlook_message())[:700])
    with pytest.raises(CorruptDocument, match=r"corrupt: cut\.msg"):
        extract_msg(str(truncated), "cut.msg")
    assert issubclass(UnsupportedType, PermanentError)


# --- Corpus (opt-in: runs where ../shared/corpus is present) -------------------------

_HEADER_LINE = ("From: ", "To: ", "Cc: ", "Date: ")


def subject_and_body(text: str) -> str:
    """The message's subject and body: what textract's expected texts hold."""
    lines = [line for line in text.split("\n") if not line.startswith(_HEADER_LINE)]
    return "\n".join(line.removeprefix("Subject: ") for line in lines)


@pytest.mark.parametrize("file_name", ["tests_eml_raw_text.eml", "tests_msg_raw_text.msg"])
def test_corpus_messages(file_name: str) -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS}")
    source = CORPUS / file_name
    expected = source.with_suffix(".txt").read_text(encoding="utf-8")
    if source.suffix == ".eml":
        content = extract_email(source.read_bytes(), source.name)
    else:
        content = extract_msg(str(source), source.name)
    score = f1(expected, subject_and_body(content.text))
    print(f"{source.name}: F1 {score:.3f}")
    assert score >= 0.95
    assert content.title and content.author and content.created


def test_corpus_forwarded_eml_and_msg_attachments() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no corpus at {CORPUS}")
    eml = CORPUS / "tests_eml_raw_text.eml"
    content = extract_email(eml.read_bytes(), eml.name, nested=read_nested)
    assert content.text.endswith(
        "\n\ntest\n\n--- attachment: test.eml ---\nFrom: Example <from@example.com>\nTo: to@example.com\n"
        "Date: Sat, 27 Mar 2010 12:09:46 -0000\nSubject: test\n\ntest"
    )
    msg = extract_msg(str(CORPUS / "tests_msg_raw_text.msg"), "tests_msg_raw_text.msg", nested=read_nested)
    assert [item["name"] for item in msg.extra["attachments"]] == [  # type: ignore[attr-defined]
        "import OleFileIO.tif",
        "raised value error.tif",
    ]
    standardized = extract_msg(str(CORPUS / "tests_msg_standardized_text.msg"), "s.msg")
    assert standardized.text.endswith("Subject: the quick brown fox\n\njumps over the lazy dog")


def test_msg_with_many_attachments_is_bounded(tmp_path: Path) -> None:
    streams = outlook_message()
    for number in range(60):
        streams |= attach("", number, f"{number:02}.txt", f"part {number}".encode())
    content = extract_msg(write_msg(tmp_path, streams), "m.msg", nested=read_nested)
    assert len(content.extra["attachments"]) == 60  # type: ignore[arg-type]
    assert content.text.count("--- attachment:") == MAX_READ
    assert content.text.endswith(f"--- attachment: {MAX_READ - 1:02}.txt ---\npart {MAX_READ - 1}")
    assert content.extra["notes"] == [
        f"{60 - MAX_READ} attachments beyond the first {MAX_READ} were not read"
    ]


def test_forwarded_message_with_a_transfer_encoding_is_decoded() -> None:
    data = (
        b"From: a@example.com\nSubject: outer\nContent-Type: multipart/mixed; boundary=B\n\n"
        b"--B\n\nouter body\n"
        b"--B\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        b"U3ViamVjdDogaW5uZXIKCmlubmVyIGJvZHkK\n--B--\n"
    )
    content = extract_email(data, "m.eml", nested=read_nested)
    assert content.text.endswith(
        "outer body\n\n--- attachment: message.eml ---\nSubject: inner\n\ninner body"
    )
