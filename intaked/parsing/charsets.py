"""Charset labels and byte decoding for mail text.

Follows RFC 2045 / RFC 2046 (the ``charset`` parameter, default ``us-ascii``), RFC 2978 (IANA charset
names) and RFC 6532 (8-bit UTF-8 in messages), corrected for what real clients send:

* ``big5`` and its aliases decode as ``cp950`` (Outlook labels CP950 text as ``big5``; Python's ``big5``
  codec rejects CP950's extra characters such as 碁 銹 裏 恒), then ``big5hkscs``;
* ``gb2312`` / ``gbk`` / ``euc-cn`` decode as ``gb18030`` (a superset; GBK characters are common under a
  ``gb2312`` label);
* ``iso-2022-jp`` text with NEC extension characters (①), which every Python ``iso2022_jp*`` codec rejects,
  is converted from JIS to Shift_JIS byte by byte and decoded as ``cp932``;
* a weak declaration (none, ``us-ascii``, ``iso-8859-1``, ``windows-1252``) on bytes that are valid UTF-8
  with non-ASCII characters decodes as UTF-8; undeclared or wrongly declared 8-bit text is detected.

Detection first scores strict decodings by how much of the text consists of *common* characters of the
candidate's script (Big5 level 1 hanzi, GB2312 level 1 hanzi, JIS level 1 kanji and kana, KS X 1001
Hangul, Latin-1 letters), which works on short strings such as subjects; for longer text with no clear
winner, ``charset-normalizer`` (restricted to the same candidate list) breaks the tie.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from .iso2022jp import decode_iso2022jp_nec

# Label (lower case, stripped) -> Python codec used to decode it.
_ALIASES: dict[str, str] = {
    "big5": "cp950",
    "big-5": "cp950",
    "x-big5": "cp950",
    "cn-big5": "cp950",
    "csbig5": "cp950",
    "big5-eten": "cp950",
    "cp950": "cp950",
    "ms950": "cp950",
    "x-x-big5": "cp950",
    "big5-hkscs": "big5hkscs",
    "big5hkscs": "big5hkscs",
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "chinese": "gb18030",
    "gb18030": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ksc5601": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "korean": "cp949",
    "cp949": "cp949",
    "windows-949": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "x-sjis": "cp932",
    "sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "cp932": "cp932",
    "iso-2022-jp": "iso2022_jp",
    "csiso2022jp": "iso2022_jp",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-11": "cp874",
    "unicode-1-1-utf-7": "utf_7",
    "utf-7": "utf_7",
    "utf8": "utf_8",
    "utf-8": "utf_8",
    "us-ascii": "ascii",
    "ascii": "ascii",
    "ansi_x3.4-1968": "ascii",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "windows-1252": "cp1252",
    "cp1252": "cp1252",
    "iso-8859-8-i": "iso8859_8",
}

# Declarations too weak to trust over valid UTF-8.
_WEAK = {
    "",
    "us-ascii",
    "ascii",
    "ansi_x3.4-1968",
    "iso-8859-1",
    "iso8859-1",
    "latin1",
    "latin-1",
    "windows-1252",
    "cp1252",
}
# Declarations that promise 7-bit text: 8-bit bytes under them mean "undeclared".
_SEVEN_BIT = {"", "us-ascii", "ascii", "ansi_x3.4-1968"}
# Codecs that codecs.lookup knows but that do not decode text from mail.
_NOT_TEXT = {
    "undefined",
    "idna",
    "punycode",
    "unicode_escape",
    "raw_unicode_escape",
    "mbcs",
    "oem",
    "palmos",
    "base64_codec",
    "hex_codec",
    "quopri_codec",
    "uu_codec",
    "zlib_codec",
    "bz2_codec",
    "rot_13",
}

DETECT_CANDIDATES: tuple[str, ...] = (
    "cp950",
    "big5hkscs",
    "gb18030",
    "cp932",
    "euc_jp",
    "cp949",
    "cp1252",
    "latin_1",
)
_DETECT_SAMPLE = 65536
_MIN_SCORE = 0.25
_LABEL_CLEAN = re.compile(r"[^a-z0-9_.:+-]")


def clean_label(label: str | None) -> str:
    """Normalise a charset label as found in a header: lower case, no quotes, no RFC 2231 language."""
    if not label:
        return ""
    text = label.strip().strip("\"'").strip().lower()
    text = text.split("*", 1)[0]
    return _LABEL_CLEAN.sub("", text)


def codec_for(label: str | None) -> str | None:
    """The Python codec to decode text labelled ``label`` with, or None for an unknown label."""
    name = clean_label(label)
    if not name:
        return None
    if name in _ALIASES:
        return _ALIASES[name]
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _NOT_TEXT or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _strict(data: bytes, codec: str) -> str | None:
    """Decode strictly, None on failure (including codecs that misbehave on odd input)."""
    try:
        return data.decode(codec)
    except (UnicodeError, LookupError, ValueError, TypeError):
        if codec == "cp950":
            return _strict(data, "big5hkscs")
        if codec == "iso2022_jp":
            return decode_iso2022jp_nec(data)
        if codec == "cp1252":
            return _strict(data, "latin_1")
        return None


def _is_utf8_text(data: bytes) -> str | None:
    text = _strict(data, "utf_8")
    if text is not None and text.startswith("\ufeff"):
        text = text[1:]
    return text


def _weight(ch: str, codec: str) -> float:
    """How typical a non-ASCII character is of text really written in ``codec`` (1 common .. 0 unlikely)."""
    o = ord(ch)
    if 0xE000 <= o <= 0xF8FF or o < 0xA0:
        return 0.0
    try:
        if codec in ("cp950", "big5hkscs"):
            b = ch.encode("cp950")
            code = b[0] << 8 | b[1] if len(b) == 2 else 0
            if 0xA440 <= code <= 0xC67E or 0xA140 <= code <= 0xA3BF:
                return 1.0
            return 0.5 if 0xC940 <= code <= 0xF9FE else 0.0
        if codec == "gb18030":
            if 0x4E00 <= o <= 0x9FFF or 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E:
                try:
                    b = ch.encode("gb2312")
                except UnicodeError:
                    return 0.3 if 0x4E00 <= o <= 0x9FFF else 0.0
                return 1.0 if 0xB0 <= b[0] <= 0xD7 or 0xA1 <= b[0] <= 0xA3 else 0.5
            return 0.0
        if codec in ("cp932", "euc_jp"):
            if 0x3040 <= o <= 0x30FF or 0x3000 <= o <= 0x303F or 0xFF01 <= o <= 0xFF5E:
                return 1.0
            b = ch.encode("euc_jp")
            if len(b) == 2 and 0xB0 <= b[0] <= 0xCF:
                return 1.0
            return 0.5 if len(b) == 2 and 0xD0 <= b[0] <= 0xF4 else 0.0
        if codec == "cp949":
            if 0x3000 <= o <= 0x303F:
                return 1.0
            b = ch.encode("euc_kr")
            return 1.0 if len(b) == 2 and 0xB0 <= b[0] <= 0xC8 else 0.0
    except UnicodeError:
        return 0.0
    return 0.0


def _score(text: str, codec: str) -> float:
    """Share of typical characters among the non-ASCII ones (1.0 when there are none)."""
    total = 0
    good = 0.0
    latin = codec in ("cp1252", "latin_1")
    for i, ch in enumerate(text):
        if ord(ch) < 0x80:
            continue
        total += 1
        if latin:
            # Latin text puts accented letters next to ASCII letters; CJK bytes read as Latin-1 do not.
            before = text[i - 1] if i else " "
            after = text[i + 1] if i + 1 < len(text) else " "
            near_ascii = (before.isascii() and before.isalpha()) or (after.isascii() and after.isalpha())
            good += 1.0 if near_ascii and (ch.isalpha() or ch in "€‘’“”–—…•°") else 0.0
        else:
            good += _weight(ch, codec)
        if total >= 4000:
            break
    return good / total if total else 1.0


def detect(data: bytes, hint: str | None = None) -> tuple[str, str] | None:
    """Guess the charset of undeclared 8-bit ``data``: returns (codec, text) decoded strictly, or None."""
    text = _is_utf8_text(data)
    if text is not None:
        return "utf_8", text
    sample = data[:_DETECT_SAMPLE]
    # Do not let the sample end inside a multibyte character.
    if len(data) > _DETECT_SAMPLE:
        cut = sample.rfind(b"\n")
        if cut > _DETECT_SAMPLE // 2:
            sample = sample[:cut]
    candidates: list[str] = []
    hint_codec = codec_for(hint)
    if hint_codec and hint_codec not in ("ascii", "utf_8", "cp1252", "latin_1"):
        candidates.append(hint_codec)
    candidates += [c for c in DETECT_CANDIDATES if c not in candidates]
    scored: list[tuple[float, int, str]] = []
    for rank, codec in enumerate(candidates):
        if _strict(sample, codec) is None:
            continue
        bonus = 0.15 if rank == 0 and hint_codec == codec else 0.0
        scored.append((_score(_strict(sample, codec) or "", codec) + bonus, -rank, codec))
    if not scored:
        return None
    scored.sort(reverse=True)
    if scored[0][0] < _MIN_SCORE:
        return None  # nothing reads as text: binary junk or an exotic charset
    best = scored[0]
    if best[0] < 0.6 and len(sample) >= 64:
        guess = _normalizer_guess(sample, [c for _, _, c in scored])
        if guess is not None:
            best = next(s for s in scored if s[2] == guess)
    for _, _, codec in [best] + [s for s in scored if s is not best]:
        full = _strict(data, codec)
        if full is not None:
            return codec, full
    return None


def _normalizer_guess(sample: bytes, candidates: list[str]) -> str | None:
    try:
        match = from_bytes(sample, cp_isolation=candidates).best()
    except Exception:  # a detector failure only loses the guess
        return None
    if match is None:
        return None
    enc = match.encoding
    if enc == "big5hkscs" and "cp950" in candidates:
        enc = "cp950"
    return enc if enc in candidates else None


def storable_text(text: str) -> str:
    """``text`` as every store and UTF-8 encoder takes it: no NUL characters (PostgreSQL refuses
    them) and no lone surrogates (each becomes ``?``)."""
    text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def decode_text(
    data: bytes,
    declared: str | None,
    problems: list[str] | None = None,
    what: str = "text",
    hint: str | None = None,
) -> str:
    """Decode ``data`` labelled ``declared`` (may be None) to text; never raises.

    Falls back, in order: declared charset (strict, with the corrections above) -> UTF-8 -> detection ->
    declared (or UTF-8) with replacement characters, recording a problem in ``problems``.
    """
    if not data:
        return ""
    label = clean_label(declared)
    codec = codec_for(label)
    is_ascii = data.isascii()
    if is_ascii:
        if codec is not None:
            text = _strict(data, codec)
            if text is not None:
                return text
        if codec is None and b"\x1b$" in data:
            text = _strict(data, "iso2022_jp")
            if text is not None:
                return text
        return data.decode("ascii")
    if label in _WEAK:
        text = _is_utf8_text(data)
        if text is not None:
            return text
    if codec is not None and label not in _SEVEN_BIT:
        text = _strict(data, codec)
        if text is not None:
            return text
    found = detect(data, hint=hint)
    if found is not None:
        return found[1]
    if problems is not None:
        shown = label or "none"
        problems.append(f"{what}: could not decode charset {shown!r} cleanly, replaced bad bytes")
    try:
        return data.decode(codec or "utf_8", "replace")
    except (LookupError, ValueError, TypeError, UnicodeError):
        return data.decode("utf_8", "replace")


def decode_header_bytes(
    data: bytes, hint: str | None = None, problems: list[str] | None = None, what: str = "header"
) -> str:
    """Decode raw 8-bit header bytes (RFC 6532): UTF-8, else the message's body charset, else detection."""
    return decode_text(data, None, problems, what, hint=hint)
