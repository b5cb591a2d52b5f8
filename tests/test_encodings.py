"""Legacy text encodings without a declared charset, and HTML too large or too deep to parse.

Every cell of the matrix (language x encoding x paragraph or short sentence) must decode
to exactly the text that was encoded, as plain text and as HTML without a charset.
"""

from __future__ import annotations

import codecs
import json
import re
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

from docq.errors import CorruptDocument, PermanentError, TooLarge
from docq.processing.html import MAX_DEPTH, extract_html
from docq.processing.text import decode, extract_text

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"

# A paragraph of a few hundred characters and a sentence or two, in each language.
TEXTS = {
    "French": (
        "La crème brûlée est un dessert français composé d'une crème à base de jaunes d'œufs, de sucre "
        "et de lait, recouverte d'une couche de sucre caramélisé. Où qu'on aille, on la trouve à la carte "
        "des brasseries ; elle se déguste tiède ou froide, et son goût évoque les fêtes d'été à la "
        "campagne, près de la forêt où l'on s'arrête volontiers.",
        "Le café était déjà fermé à côté de l'hôtel. Nous sommes allés à la crêperie.",
    ),
    "Italian": (
        "La città di Firenze è famosa per la sua architettura rinascimentale e per i musei. Perché è così "
        "bella? Forse perché ogni via racconta una storia, e la qualità della vita è alta. Più di un "
        "viaggiatore ha detto che lì si mangia benissimo: la cucina toscana è semplice, ma le sue ricette "
        "hanno una profondità che non si dimentica.",
        "La città è bella e la libertà è già qui. Perché no?",
    ),
    "Portuguese": (
        "A informação sobre a educação pública no Brasil é essencial para a população. As crianças não "
        "têm acesso à mesma qualidade de ensino em todas as regiões, e a situação exige atenção: é "
        "preciso investir em formação de professores, em bibliotecas e em tecnologia, além de garantir "
        "alimentação adequada nas escolas da nação.",
        "A informação não está disponível. Não há solução à vista.",
    ),
    "Dutch": (
        "Het Nederlandse café is een ontmoetingsplaats waar men na het werk een biertje drinkt. In België "
        "noemt men het soms een kroeg; de sfeer is er gezellig en de geëmigreerde buurman vertelt er zijn "
        "verhalen over vroeger. Coöperaties en ideeën worden er besproken, en niemand heeft haast: de "
        "avond duurt zolang het gesprek interessant blijft.",
        "Wij hebben een coöperatie opgericht met veel ideeën en een café.",
    ),
    "German": (
        "Die Größe der Städte in Deutschland hat sich über die Jahrhunderte stark verändert. Früher "
        "lebten die meisten Menschen auf dem Land, heute wohnen über siebzig Prozent in Städten. Die "
        "Übergänge zwischen Stadt und Land sind fließend, und viele Dörfer gehören längst zu größeren "
        "Gemeinden, deren Straßen täglich von Pendlern befahren werden.",
        "Der Bäcker öffnet um fünf Uhr. Die Brötchen sind süß und groß.",
    ),
    "Spanish": (
        "El niño pequeño corrió hacia la montaña mientras su madre preparaba la comida en la cocina. "
        "¿Quién sabía que aquel día cambiaría su vida? La señora García, vecina de toda la vida, le había "
        "contado historias de los años de la guerra, y él soñaba con ser explorador, atravesar océanos y "
        "descubrir países lejanos y desconocidos.",
        "¿Dónde está la estación? El tren llegará mañana por la mañana.",
    ),
    "Swedish": (
        "Sverige är ett land i norra Europa med många sjöar och stora skogar. På vintern är det kallt och "
        "mörkt, men på sommaren är nätterna ljusa och långa. Många svenskar tillbringar sina semestrar i "
        "små stugor vid vattnet, där de fiskar, plockar bär och njuter av tystnaden. Köttbullar och sill "
        "hör till de mest kända rätterna.",
        "Vi åker till sjön på lördag och äter smörgåsar.",
    ),
    "Danish": (
        "Danmark er et lille land med en lang kystlinje og mange øer. Københavns gader er fyldt med "
        "cykler året rundt, og danskerne er kendt for deres hygge: stearinlys, varm kaffe og gode venner "
        "omkring bordet. Rødgrød med fløde er en klassisk dessert, som udlændinge har svært ved at "
        "udtale, og det morer de indfødte meget.",
        "Vi spiste rødgrød med fløde på øen i går.",
    ),
    "Norwegian": (
        "Norge er kjent for sine fjorder, fjell og lange vintre. Mange nordmenn går på ski så snart snøen "
        "har lagt seg, og på søndager er skiløypene fulle av familier med matpakke og termos. Om sommeren "
        "er det lyst nesten hele døgnet i nord, og turistene kommer for å se midnattssolen over havet og "
        "de små fiskeværene på øyene.",
        "Vi gikk på tur i fjellet og så en bjørn ved vannet.",
    ),
    "Icelandic": (
        "Ísland er eyja í Norður-Atlantshafi með um það bil fjögur hundruð þúsund íbúa. Þar eru jöklar, "
        "eldfjöll og hverir, og náttúran er bæði fögur og hættuleg. Íslendingar tala íslensku, tungumál "
        "sem hefur breyst lítið síðan á miðöldum, og þeir geta enn lesið fornsögurnar á frummálinu án "
        "mikilla erfiðleika.",
        "Það er kalt á Íslandi í vetur og dagarnir eru stuttir.",
    ),
    "Czech": (
        "Praha je hlavní město České republiky a leží na řece Vltavě. Její historické centrum patří mezi "
        "nejkrásnější v Evropě a každý rok přitahuje miliony turistů. Na Karlově mostě stojí třicet soch "
        "světců, a z Pražského hradu je nádherný výhled na střechy Malé Strany. Čeština používá háčky a "
        "čárky, například v slovech řeka, žena a šťastný.",
        "Dobrý den, jak se máte? Děkuji, mám se výborně.",
    ),
    "Polish": (
        "Warszawa jest stolicą Polski i największym miastem w kraju. Podczas drugiej wojny światowej "
        "została niemal całkowicie zniszczona, ale po wojnie odbudowano jej stare miasto z wielką "
        "starannością. Dziś łączy nowoczesne wieżowce z zabytkowymi kościołami, a nad Wisłą spacerują "
        "mieszkańcy, którzy cieszą się ciepłymi wieczorami i źródlaną wodą.",
        "Dzień dobry, czy mówi pan po polsku? Tak, trochę.",
    ),
    "Russian": (
        "Москва - столица России и крупнейший город страны. Она расположена на реке Москве и известна "
        "своими историческими памятниками, такими как Кремль и Красная площадь. Каждый год миллионы "
        "туристов приезжают сюда, чтобы увидеть собор Василия Блаженного, посетить Большой театр и "
        "прогуляться по широким улицам и тихим паркам.",
        "Привет, как дела? Всё хорошо, спасибо.",
    ),
    "Greek": (
        "Η Αθήνα είναι η πρωτεύουσα της Ελλάδας και μία από τις αρχαιότερες πόλεις του κόσμου. Η "
        "Ακρόπολη, με τον Παρθενώνα στην κορυφή της, δεσπόζει πάνω από την πόλη και θυμίζει σε όλους την "
        "ιστορία της δημοκρατίας και της φιλοσοφίας. Οι επισκέπτες απολαμβάνουν επίσης τα νησιά, τη "
        "θάλασσα και την ελληνική κουζίνα.",
        "Καλημέρα, τι κάνετε; Είμαι καλά, ευχαριστώ.",
    ),
    "Japanese": (
        "東京は日本の首都であり、世界で最も人口の多い都市圏の一つです。伝統的な寺院や神社と、近代的な高層ビルが"
        "共存しています。春には桜が咲き、多くの人々が公園で花見を楽しみます。食文化も豊かで、寿司やラーメン、"
        "天ぷらなど、様々な料理を味わうことができます。",
        "今日はいい天気ですね。散歩に行きましょう。",
    ),
    "Chinese": (
        "北京是中华人民共和国的首都，也是全国的政治和文化中心。这座城市有着三千多年的历史，拥有故宫、天坛、"
        "长城等众多名胜古迹。每年都有大量游客来到这里参观游览，品尝北京烤鸭等地方美食，感受古老与现代交融的"
        "独特魅力。",
        "今天天气很好，我们去公园散步吧。",
    ),
}
WESTERN = ("French", "Italian", "Portuguese", "Dutch", "German", "Spanish", "Swedish", "Danish", "Norwegian")
ENCODINGS = {
    **{language: ("cp1252", "latin-1") for language in (*WESTERN, "Icelandic")},
    "Czech": ("cp1250", "iso8859-2"),
    "Polish": ("cp1250", "iso8859-2"),
    "Russian": ("cp1251", "koi8-r"),
    "Greek": ("cp1253", "iso8859-7"),
    "Japanese": ("shift_jis",),
    "Chinese": ("gbk",),
}
UNICODE = {
    "utf-8": ("utf-8", b""),
    "utf-16-le with BOM": ("utf-16-le", codecs.BOM_UTF16_LE),
    "utf-16-be with BOM": ("utf-16-be", codecs.BOM_UTF16_BE),
    "utf-16-le without BOM": ("utf-16-le", b""),
    "utf-16-be without BOM": ("utf-16-be", b""),
}


def _legacy_cells() -> list[tuple[str, str, str]]:
    return [
        (language, encoding, length)
        for language, encodings in ENCODINGS.items()
        for encoding in encodings
        for length in ("paragraph", "short")
    ]


def _sample(language: str, length: str, encoding: str) -> str:
    text = TEXTS[language][0 if length == "paragraph" else 1]
    return text.replace("œ", "oe") if encoding == "latin-1" else text  # Latin-1 has no "œ"


def _html(text: str) -> str:
    """A page without a charset whose readable text is ``text``."""
    return f"<!DOCTYPE html>\n<html><head><title>Page</title></head>\n<body><p>{text}</p></body></html>\n"


# --- The matrix ----------------------------------------------------------------------


@pytest.mark.parametrize(("language", "encoding", "length"), _legacy_cells())
def test_legacy_text_decodes_exactly(language: str, encoding: str, length: str) -> None:
    text = _sample(language, length, encoding)
    decoded, _codec = decode(text.encode(encoding), "sample.txt")
    assert decoded == text


@pytest.mark.parametrize(("language", "encoding", "length"), _legacy_cells())
def test_legacy_html_without_charset_decodes_exactly(language: str, encoding: str, length: str) -> None:
    text = _sample(language, length, encoding)
    content = extract_html(_html(text).encode(encoding), "page.html")
    assert content.text == text
    assert content.title == "Page"


@pytest.mark.parametrize("unicode", UNICODE)
@pytest.mark.parametrize("language", ["French", "Polish", "Russian", "Greek", "Japanese", "Chinese"])
def test_unicode_text_and_html_decode_exactly(language: str, unicode: str) -> None:
    codec, bom = UNICODE[unicode]
    for text in TEXTS[language]:
        line = text + "\n"  # a file ends its last line; UTF-16 of Chinese has no zero bytes without it
        assert decode(bom + line.encode(codec), "sample.txt")[0] == line
        assert extract_html(bom + _html(text).encode(codec), "page.html").text == text


def test_windows_1252_punctuation_and_euro() -> None:
    text = "L’été dernier, « maison » – délicieuse… Ça coûte 5 € ; c’est l’œuvre d’un chef, dit-il."
    assert decode(text.encode("cp1252"), "a.txt") == (text, "cp1252")


def test_latin9_is_told_from_windows_1252() -> None:
    text = "Le cœur de l'œuvre coûte 5 €."
    assert decode(text.encode("iso8859-15"), "a.txt") == (text, "iso8859-15")


def test_extract_text_normalises_newlines_of_legacy_text() -> None:
    data = "Résumé\r\n\r\nLa réunion a été reportée à jeudi.\r\n".encode("cp1252")
    content = extract_text(data, "minutes.txt", markdown=False)
    assert content.text == "Résumé\n\nLa réunion a été reportée à jeudi.\n"
    assert content.encoding == "cp1252"


def test_markdown_heading_in_windows_1250_is_the_title() -> None:
    data = "# Zażółć gęślą jaźń\n\nTekst próbny.\n".encode("cp1250")
    content = extract_text(data, "notes.md", markdown=True)
    assert content.title == "Zażółć gęślą jaźń"


def test_utf8_cut_in_the_middle_of_its_last_character_stays_utf8() -> None:
    data = "Größe: über 100 €".encode()[:-2]
    assert decode(data, "cut.txt") == ("Größe: über 100 ", "utf-8")


def test_a_declared_charset_wins() -> None:
    page = '<html><head><meta charset="windows-1250"></head><body><p>Děkuji</p></body></html>'
    content = extract_html(page.encode("cp1250"), "page.html")
    assert (content.text, content.encoding) == ("Děkuji", "windows-1250")


def test_guessing_megabytes_of_windows_1252_is_fast() -> None:
    words = " ".join(TEXTS[language][0] for language in WESTERN).split()
    lines = (" ".join(words[(i * 7) % len(words) :][:12]) + f" {i}.\n" for i in range(60_000))
    text = "".join(lines)
    data = text.encode("cp1252")
    assert len(data) > 4_000_000
    started = time.perf_counter()
    decoded, codec = decode(data, "big.txt")
    elapsed = time.perf_counter() - started
    print(f"decoded {len(data) / 1e6:.1f} MB of cp1252 in {elapsed * 1000:.0f} ms")
    assert (decoded == text, codec) == (True, "cp1252")
    assert elapsed < 1.0


# --- HTML too deep or too large ------------------------------------------------------


@pytest.mark.parametrize(
    "page",
    [
        "<div>x" * 100_000 + "</div>" * 100_000,  # nested
        "<div/>x" * 100_000,  # "/>" closes no <div> in HTML
        "<em>x</div>" * 100_000,  # end tags that close nothing
        "<b><div>x" * 50_000,
    ],
    ids=["nested-divs", "self-closed-divs", "stray-end-tags", "formatting-and-blocks"],
)
def test_too_deeply_nested_html_fails_permanently_at_once(page: str) -> None:
    started = time.perf_counter()
    with pytest.raises(CorruptDocument, match=r"^corrupt: deep\.html: too deeply nested to parse"):
        extract_html(f"<html><body>{page}</body></html>".encode(), "deep.html")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "page",
    [
        "<div>" * (MAX_DEPTH - 10) + "deep" + "</div>" * (MAX_DEPTH - 10),
        "<div><b>unclosed bold</div>" * 5_000,  # a sloppy page: </div> closes the <b> too
        "<svg>" + '<path d="M0 0"/>' * 5_000 + "</svg><p>after the drawing</p>",
        "<script>var s = '" + "<div>" * 5_000 + "';</script><p>after the script</p>",
        "<!--" + "<div>" * 5_000 + "--><p>after the comment</p>",
    ],
    ids=["deep-but-allowed", "unclosed-inline", "svg", "script", "comment"],
)
def test_pages_within_the_depth_limit_parse(page: str) -> None:
    content = extract_html(f"<html><body>{page}</body></html>".encode(), "fine.html")
    assert content.text.split()[-1] in ("deep", "bold", "drawing", "script", "comment")


def _in_child(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh Python process; it prints one JSON object, returned here."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


_CHILD_PRELUDE = """
    import json, resource
    from docq.errors import PermanentError

    def address_space():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()

    def report(call):
        try:
            call()
        except Exception as error:
            print(json.dumps({"type": type(error).__name__, "message": str(error),
                              "permanent": isinstance(error, PermanentError)}))
        else:
            print(json.dumps({"type": None}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_50_mb_page_under_a_memory_limit_fails_permanently() -> None:
    result = _in_child(
        _CHILD_PRELUDE
        + """
    from docq.processing.html import extract_html
    row = '<tr><td><b>1</b></td><td><a href="/x">two</a></td><td><i>three</i></td></tr>\\n'
    page = ("<html><body><table>" + row * (50 * 2**20 // len(row)) + "</table>").encode()
    limit = 1024**3  # the worker's default memory limit
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    report(lambda: extract_html(page, "huge.html"))
    """
    )
    assert result["type"] == TooLarge.__name__
    assert result["permanent"] is True
    assert str(result["message"]).startswith("too large: huge.html: too large to parse: 50.0 MiB of HTML")


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_parser_running_out_of_memory_fails_permanently() -> None:
    # A page the estimate lets through, in a process with less memory than it said:
    # lexbor's allocation fails, and that is reported as permanent, with its cause.
    result = _in_child(
        _CHILD_PRELUDE
        + """
    from docq.processing.html import _parse
    paragraph = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 20 + "</p>\\n"
    text = "<html><body>" + paragraph * (50 * 2**20 // len(paragraph))
    limit = address_space() + 75 * 2**20  # room for the parser's UTF-8 copy, not for its tree
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    report(lambda: _parse(text, "big.html"))
    """
    )
    assert result["type"] == TooLarge.__name__
    assert result["permanent"] is True
    assert "too large to parse: the HTML parser ran out of memory" in str(result["message"])


def test_size_check_comes_before_decoding() -> None:
    # 40 MB of nothing but tags needs more than the 2 GiB a parse may take with no limit.
    page = b"<i>x</i>" * (40 * 2**20 // 8)
    with pytest.raises(TooLarge, match=r"too large to parse") as raised:
        extract_html(page, "huge.html")
    assert isinstance(raised.value, PermanentError)


# --- Real documents ------------------------------------------------------------------


def _words(text: str) -> Counter[str]:
    # Tokens without a letter or digit ("|" drawn between table cells) are layout.
    return Counter(word for word in text.split() if re.search(r"\w", word))


def word_f1(got: str, expected: str) -> float:
    """The F1 score of the words of ``got`` against those of ``expected``."""
    ours, theirs = _words(got), _words(expected)
    common = sum((ours & theirs).values())
    if not common:
        return 0.0
    precision, recall = common / sum(ours.values()), common / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


# The page, its expected text, and the F1 it reaches: textract lays tables out with
# headings repeated, which costs the tables page some words.
CORPUS_PAGES = [
    ("tests_html_raw_text.html", "tests_html_raw_text.txt", 0.95),
    ("tests_html_tables.html", "tests_html_tables.txt", 0.9),
    ("tests_txt_raw_text.txt", "tests_txt_raw_text.txt", 0.95),
]


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is absent ({CORPUS})")
@pytest.mark.parametrize(("name", "expected", "at_least"), CORPUS_PAGES)
def test_corpus_pages(name: str, expected: str, at_least: float) -> None:
    folder = CORPUS / "textract"
    data = (folder / name).read_bytes()
    if name.endswith(".html"):
        text = extract_html(data, name).text
    else:
        text = extract_text(data, name, markdown=False).text
    score = word_f1(text, (folder / expected).read_text(encoding="utf-8"))
    print(f"{name}: F1 {score:.3f}")
    assert score >= at_least
