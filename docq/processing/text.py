"""Plain text and Markdown, and decoding bytes whose encoding nobody declared."""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from docq.errors import CorruptDocument
from docq.processing.content import Content, clean_title
from docq.processing.detect import BOMS

EXTRACTOR = "docq"

_BOM_PREFIXES = tuple(bom for bom, _codec in BOMS)
# An ATX heading: up to three spaces, one to six "#", text, optional closing "#"s.
_MARKDOWN_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)


def extract_text(data: bytes, name: str, *, markdown: bool) -> Content:
    """The text of a plain text or Markdown file, with newlines normalised to ``\\n``.

    A Markdown file's title is its first heading. Raises `CorruptDocument` when no
    encoding makes sense of the bytes.
    """
    text, encoding = decode(data, name)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    title = None
    if markdown and (heading := _MARKDOWN_HEADING.search(text)):
        title = clean_title(heading.group(1))
    return Content(text=text, extractor=EXTRACTOR, title=title, encoding=encoding)


def decode(data: bytes, name: str, declared: str | None = None) -> tuple[str, str]:
    """``data`` as text, and the name of the encoding that decoded it.

    In order: a byte order mark; the ``declared`` encoding (as HTML declares it);
    UTF-16 told by its zero bytes; UTF-8; a guess (see `_guess`). Only the guess is
    slow, and it runs only when the cheaper ways fail. Raises `CorruptDocument` when
    no encoding makes sense of ``data``.
    """
    if data.startswith(_BOM_PREFIXES):
        for bom, codec in BOMS:
            if data.startswith(bom):
                try:
                    return data.decode(codec), codec
                except UnicodeDecodeError:
                    break  # the mark lied: guess instead
    else:
        if declared:
            try:
                return data.decode(declared), declared
            except UnicodeDecodeError:
                pass
        # Text holds no zero bytes, but UTF-16 of Cyrillic or Greek would pass for UTF-8.
        if b"\x00" in data and (found := _utf16_without_bom(data)):
            return found
        try:
            return data.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    return _guess(data, name)


# --- Guessing a legacy encoding ---------------------------------------------------
#
# Byte statistics (charset-normalizer) cannot tell French in Windows-1252 from the same
# bytes read as Windows-1250 when the text is short: "città" and "cittŕ" are equally
# likely bytes. The words can tell. Each language writes with a known set of letters; a
# word is in lower case, upper case or capitalised; and a misread byte becomes a letter
# foreign to the language, a symbol inside a word ("wie¿a"), a letter of another script
# glued to Latin ones, or a case flip ("пРИВЕТ" is KOI8-R read as Windows-1251). So
# `_guess` reads the words holding non-ASCII bytes with each candidate encoding and
# keeps the most plausible reading.

# Candidates in order of preference: among equally plausible readings the first wins,
# so Windows-1252 (what browsers assume) wins whenever the text reads as well in it.
# GB18030 is a superset of GBK, itself a superset of GB2312: the stricter one first.
_CANDIDATES = (
    "cp1252", "iso8859-15", "cp1250", "iso8859-2", "cp1251", "koi8-r", "koi8-u", "cp1253",
    "iso8859-7", "cp866", "iso8859-5", "cp1254", "cp1257", "cp932", "euc-jp", "gb2312",
    "gb18030", "big5", "cp949", "cp1255", "cp1256", "cp850", "cp874",
)  # fmt: skip
_CANDIDATE_NAMES = frozenset(codecs.lookup(codec).name for codec in _CANDIDATES)


@dataclass(frozen=True)
class _Alphabet:
    """The letters beyond ASCII that a language writes with (either case matches).

    A script of its own has no ASCII letters to vouch for it, and one legacy encoding's
    bytes often read as another script's letters (Greek or Hebrew as Cyrillic, Chinese
    as Hangul). There ``common`` letters (vowels, or the most frequent ones) must make
    up about ``expected`` of the letters, as they do in real text.
    """

    letters: re.Pattern[str]
    common: re.Pattern[str] | None = None
    expected: float = 0.0


def _alphabet(letters: str, common: str = "", expected: float = 0.0) -> _Alphabet:
    def pattern(chars: str) -> re.Pattern[str]:
        return re.compile(f"[{chars}]", re.IGNORECASE)

    return _Alphabet(pattern(letters), pattern(common), expected) if common else _Alphabet(pattern(letters))


_KANA = "\u3005\u3041-\u30ff"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff"
# The letters beyond ASCII of French, Italian, Portuguese, Spanish, Catalan, German, Dutch,
# Swedish, Danish and Norwegian, Icelandic, Finnish, Albanian, Czech, Slovak, Polish,
# Hungarian, Romanian, Croatian (and Bosnian, Serbian, Slovene), Lithuanian, Latvian,
# Estonian and Turkish.
_LATIN_ALPHABETS = (
    "àâæçéèêëîïôœùûüÿ", "àèéìòù", "áàâãçéêíóôõúü", "áéíóúüñ", "àçéèíïòóúü", "äöüß", "áéèëïóöüíú",
    "åäöé", "æøåéóô", "áðéíóúýþæö", "äöåšž", "ëç", "áčďéěíňóřšťúůýž", "áäčďéíĺľňóôŕšťúýž", "ąćęłńóśźż",
    "áéíóöőúüű", "ăâîșțşţ", "čćđšž", "ąčęėįšųūž", "āčēģīķļņšūž", "äõöüšž", "çğıöşüâîû",
)  # fmt: skip
_ALPHABETS = (
    *(_alphabet(letters) for letters in _LATIN_ALPHABETS),
    # Cyrillic and Greek: vowels make up some 40% of the letters.
    _alphabet("а-яё", "аеёиоуыэюя", 0.33),  # Russian, Bulgarian
    _alphabet("а-щьюяєіїґ", "аеєиіїоуюя", 0.33),  # Ukrainian
    _alphabet("а-шђјљњћџѓќѕ", "аеиоу", 0.33),  # Serbian, Macedonian
    _alphabet("а-яёіў", "аеёіоуыэюя", 0.33),  # Belarusian
    _alphabet("α-ωάέήίόύώϊϋΐΰς", "αεηιουωάέήίόύώϊϋΐΰ", 0.42),  # Greek
    # Scripts without vowel letters: their ten most frequent letters.
    _alphabet("\u05d0-\u05ea", "יוהלרבתמאש", 0.5),  # Hebrew
    _alphabet("\u0621-\u064a\u067e\u0686\u0698\u06a9\u06af\u06cc", "اليمونرتبة", 0.5),  # Arabic, Persian
    _alphabet("\u0e01\u0e02\u0e04\u0e06-\u0e2e\u0e30-\u0e4e", "านรอกเงมยล", 0.35),  # Thai, not ฃ ฅ
    _alphabet(  # Japanese: kana, and the most frequent kanji
        _KANA + _HAN,
        _KANA + "日一人年大十二本中長出三時行見月分後前生五間上東四今金九入学高円子外八六下来気小七山話女北午"
        "百書先名川千水半男西電校語土木聞食車何南万毎白天母火右読友左休父雨会同事自社発者地業方新場",
        0.4,
    ),
    _alphabet(  # Chinese: the most frequent characters, simplified and traditional
        _HAN,
        "的一是不了在人有我他这个们中来上大为和国地到以说时要就出会可也你对生能而子那得于着下自之年过发"
        "后作里用道行所然家种事成方多经么去法学如都同现当没动面起看定天分还进好小部其些主样理心她本前开"
        "但因只从想实這個們來為國說時會對發後裡種經麼學現當沒動開從實過於著進還樣長與",
        0.2,
    ),
    _alphabet("\uac00-\ud7a3", "이다에의는로하을가고지서한은기으년대사시를리도인스일", 0.15),  # Korean
)

_LETTER = "[^\\W\\d_]"
# Punctuation that may touch a letter: quotes, apostrophes, dashes, ordinals, CJK marks.
_TOUCHING = re.compile(
    "[\xa0\xad’‘‚“”„«»‹›–—‐‑·•°¿¡ºª²³™®©…\u0387\u05be\u05f3\u05f4\u060c\u061b\u061f"
    "\u3000-\u303f\u30fb\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65]"
)
# Symbols that text uses on their own; other symbols (box drawing, "¤", "¹") are doubtful.
_STANDALONE = frozenset("€£¥¢§©®°±×÷¼½¾¶†‡•…‰™′″")
# Of those, the ones that never sit between two letters of one word ("wie¿a", "c»st").
_INSIDE_WORD_CHARS = "“”„«»‹›¿¡ºª²³™®©…"
_INSIDE_WORD = re.compile(f"(?<={_LETTER})[{_INSIDE_WORD_CHARS}](?={_LETTER})")
# A letter of a script other than Latin, glued to a Latin one ("crč" is fine, "crш" is not).
_LATIN = "[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]"
_NON_LATIN = "(?:(?![\\W\\d_])[^\\x00-\\u024f\\u1e00-\\u1eff])"
_GLUED = re.compile(f"(?<={_LATIN}){_NON_LATIN}|{_NON_LATIN}(?={_LATIN})")
# Latin words without an ASCII letter are rare ("Äŕ" is "Да" misread), but for a few
# words of one letter ("ŕ" is the French "à" misread, "č" the Italian "è").
_ALL_ACCENTED = re.compile("[\u00c0-\u024f]+")
_ONE_LETTER_WORDS = frozenset("àáèéíòóåöøő")
_WORD = re.compile(f"{_LETTER}+")
# Sampling words: no multi-byte encoding uses an ASCII space inside a character, so
# splitting bytes at spaces splits no character.
_SPACE = re.compile(rb"\s")
_SAMPLE_LIMIT = 16 * 1024
_CHUNK = 256 * 1024
_SCAN_LIMIT = 1024 * 1024
_SCAN_ENOUGH = 256
# A reading scoring below this is nonsense in every language known here.
_PLAUSIBLE = 0.5
# What a letter of a word in capitals costs: enough to break a tie, no more. Prose is
# mostly in lower case, and case-inverting misreads (Greek as KOI8-R) are in capitals.
_CAPITALS_WEIGHT = 0.02
# Words fitted to one language together.
_RUN = 16
# A letter of another script inside a Latin word is as good as proof of a misreading.
_GLUED_WEIGHT = 3
# Undecodable bytes weigh more than a doubtful letter: they prove the reading wrong.
_UNDECODABLE_WEIGHT = 3


def _guess(data: bytes, name: str) -> tuple[str, str]:
    """``data`` decoded with the most plausible legacy encoding, and its name.

    UTF-8 cut short in the middle of its last character is UTF-8. Otherwise each
    candidate encoding reads the words holding non-ASCII bytes (see `_plausibility`),
    and the best reading that decodes all of ``data`` wins. When no reading makes
    sense, charset-normalizer has the last word.
    """
    if found := _utf8_cut_short(data):
        return found
    sample = _sample(data)
    scores: dict[str, float] = {}
    seen: dict[str, float] = {}
    for codec in _CANDIDATES:
        reading = sample.decode(codec, errors="replace")
        if reading not in seen:
            seen[reading] = _plausibility(reading)
        scores[codec] = seen[reading]
    # sorted() is stable: equal scores keep the order of preference.
    ranked = sorted(_CANDIDATES, key=scores.__getitem__, reverse=True)
    if scores[ranked[0]] < _PLAUSIBLE and (found := _last_resort(data, name)):
        return found
    for codec in ranked:
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    raise CorruptDocument(f"corrupt: {name}: its text is in no encoding that can be recognised")


def _sample(data: bytes) -> bytes:
    """Distinct words of ``data`` that hold non-ASCII bytes, up to `_SAMPLE_LIMIT` bytes.

    Reads ``data`` a chunk at a time, and stops once the sample is full, or holds a
    few words after `_SCAN_LIMIT` bytes (the words of a large file repeat).
    """
    words: dict[bytes, None] = {}
    size = start = 0
    while start < len(data) and size < _SAMPLE_LIMIT:
        if start >= _SCAN_LIMIT and size >= _SCAN_ENOUGH:
            break
        cut = _SPACE.search(data, start + _CHUNK)
        end = cut.end() if cut else len(data)
        words.update(dict.fromkeys(word for word in data[start:end].split() if not word.isascii()))
        size = sum(map(len, words)) + len(words)
        start = end
    return b" ".join(words)[:_SAMPLE_LIMIT]


def _plausibility(text: str) -> float:
    """How well ``text`` (words, one of each) reads as language, from 0 (nonsense) to 1.

    The share of its non-ASCII letters that belong to the alphabet of the language
    that fits their run of words best, discounted for signs of a misreading: letters
    foreign to that alphabet, symbols touching letters, letters of another script
    glued to Latin ones, words whose case flips inside them, undecodable bytes.
    """
    letters: dict[str, int] = {}
    symbols: list[str] = []
    marks: list[str] = []
    misplaced = 0.0
    counts = Counter(text)
    for char, count in counts.items():
        if char.isascii() or char.isspace():
            continue
        if char.isalpha():
            letters[char] = count
            continue
        category = unicodedata.category(char)
        if char == "\ufffd" or category[0] == "C":  # controls, private use, unassigned
            misplaced += _UNDECODABLE_WEIGHT * count
        elif category[0] == "M":
            marks.append(char)
        elif not _TOUCHING.match(char):
            symbols.append(char)
            misplaced += 0 if char in _STANDALONE else count / 2
    if any(char in counts for char in _INSIDE_WORD_CHARS):
        misplaced += len(_INSIDE_WORD.findall(text))
    if symbols:
        stray = "[" + re.escape("".join(symbols)) + "]"
        misplaced += len(re.findall(f"{stray}(?={_LETTER})|(?<={_LETTER}){stray}", text))
    if marks:  # a combining mark belongs on a letter (or on another mark)
        mark = "[" + re.escape("".join(marks)) + "]"
        misplaced += len(re.findall(f"(?<!{_LETTER})(?<!{mark}){mark}", text))
    if any(char > "\u024f" for char in letters):
        misplaced += _GLUED_WEIGHT * len(_GLUED.findall(text))
    misplaced += _misshapen_words(text)
    # A document may change language from one paragraph to the next: each run of words
    # (in the order they first appear) is fitted on its own.
    words = text.split()
    fit = 0.0
    for start in range(0, len(words), _RUN):
        run = Counter("".join(words[start : start + _RUN]))
        run_letters = {char: count for char, count in run.items() if char in letters}
        distinct = "".join(run_letters)
        fit += max(_fit(alphabet, run_letters, distinct) for alphabet in _ALPHABETS)
    total = sum(letters.values()) + misplaced
    return fit / total if total else 1.0


def _misshapen_words(text: str) -> float:
    """What the non-ASCII words of ``text`` cost for their shape: a word in two cases
    that is not capitalised, or of accented Latin letters only, costs its length; a
    word in capitals costs a little."""
    cost = 0.0
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        case_flips = word.lower() != word != word.upper() and not word.istitle()
        if case_flips or (_ALL_ACCENTED.fullmatch(word) and word.lower() not in _ONE_LETTER_WORDS):
            cost += len(word)
        elif len(word) > 1 and word.isupper():
            cost += _CAPITALS_WEIGHT * len(word)
    return cost


def _fit(alphabet: _Alphabet, letters: dict[str, int], distinct: str) -> float:
    """How many of ``letters`` (counts by letter; ``distinct`` their keys) are in
    ``alphabet``, counting for as little as half when too few of them are common."""
    fit = sum(map(letters.__getitem__, alphabet.letters.findall(distinct)))
    if alphabet.common is None or not fit:
        return fit
    common = sum(map(letters.__getitem__, alphabet.common.findall(distinct)))
    return fit * (1 + min(1.0, common / fit / alphabet.expected)) / 2


def _utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """``data`` as UTF-16 when its zero bytes say so: the high bytes of ASCII characters.

    Legacy 8-bit text holds no zero bytes; UTF-16 holds one for each ASCII character,
    all at odd offsets (little-endian) or all at even ones (big-endian). Text without
    any ASCII character (not even a newline) is not recognised.
    """
    units = len(data) // 2
    if len(data) % 2 or not units:
        return None
    even, odd = data[0::2].count(0), data[1::2].count(0)
    zeros, stray, codec = (odd, even, "utf-16-le") if odd >= even else (even, odd, "utf-16-be")
    if zeros * 256 < units or stray * 4 > zeros:
        return None
    try:
        text = data.decode(codec)
    except UnicodeDecodeError:
        return None
    head = text[:8192]
    unprintable = sum(not (char.isprintable() or char.isspace()) for char in head)
    return (text, codec) if unprintable * 100 <= len(head) else None


def _utf8_cut_short(data: bytes) -> tuple[str, str] | None:
    """``data`` as UTF-8 when only its last character is incomplete (a file cut short)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        # Only UTF-8 already seen vouches for it: one high byte ending ASCII text is no evidence.
        head = data[: error.start]
        if error.reason == "unexpected end of data" and error.start >= len(data) - 3 and not head.isascii():
            return head.decode("utf-8"), "utf-8"
    return None


def _last_resort(data: bytes, name: str) -> tuple[str, str] | None:
    """charset-normalizer's guess when it is an encoding not among the candidates (which
    it ranks worse than `_plausibility` does); `CorruptDocument` if it has none."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None:
        raise CorruptDocument(f"corrupt: {name}: its text is in no encoding that can be recognised")
    if codecs.lookup(best.encoding).name in _CANDIDATE_NAMES:
        return None
    return str(best), best.encoding
