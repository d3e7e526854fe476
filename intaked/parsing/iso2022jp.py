"""ISO-2022-JP with the NEC and IBM extension characters (①, ㈱ ...) that Japanese mailers emit
and every Python ``iso2022_jp*`` codec rejects: the JIS runs are converted to Shift_JIS byte by
byte and decoded as ``cp932``."""

from __future__ import annotations


def decode_iso2022jp_nec(data: bytes) -> str | None:
    """Decode ISO-2022-JP by converting its JIS X 0208 runs to Shift_JIS and decoding as cp932.

    This keeps NEC row 13 characters (①, ㈱ ...) and IBM extensions that ISO-2022-JP mailers emit but
    that Python's ``iso2022_jp*`` codecs reject.
    """
    out = bytearray()
    mode = "ascii"
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b == 0x1B:
            seq = data[i + 1 : i + 3]
            if seq in (b"(B", b"(J"):
                mode, i = "ascii", i + 3
            elif seq in (b"$@", b"$B"):
                mode, i = "jis", i + 3
            elif seq == b"(I":
                mode, i = "kana", i + 3
            elif data[i + 1 : i + 4] == b"$(Q" or data[i + 1 : i + 4] == b"$(O":
                mode, i = "jis", i + 4
            else:
                return None
            continue
        if b in (0x0A, 0x0D):
            out.append(b)
            i += 1
            continue
        if b >= 0x80:
            return None
        if mode == "ascii":
            out.append(b)
            i += 1
        elif mode == "kana":
            out.append(b + 0x80)
            i += 1
        else:
            if i + 1 >= n:
                return None
            j1, j2 = b, data[i + 1]
            if not (0x21 <= j1 <= 0x7E and 0x21 <= j2 <= 0x7E):
                return None
            s1 = ((j1 - 0x21) >> 1) + 0x81
            if s1 > 0x9F:
                s1 += 0x40
            if j1 & 1:
                s2 = j2 + 0x1F
                if s2 >= 0x7F:
                    s2 += 1
            else:
                s2 = j2 + 0x7E
            out += bytes((s1, s2))
            i += 2
    try:
        return bytes(out).decode("cp932")
    except UnicodeError:
        return None
