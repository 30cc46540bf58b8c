"""Byte-level BPE's tables over code points: GPT-2's byte -> symbol table, UTF-8 bytes, the pre-tokenizer's
character classes, and code points <-> strings.

Pure numpy (no numba, no other actok module): the coefficient codec and the compiled loops both read these
tables, so neither imports the other for them.
"""

from __future__ import annotations

import unicodedata
from functools import cache

import numpy as np

SURROGATES = 0xD800  # the first code point byte-level BPE cannot spell (U+D800-DFFF are not characters)
#: Code points the compiled encode loop has tables for (the Basic Multilingual Plane); rows with larger ones, which
#: need coefficients thousands of steps beyond any fitted range, go through the library.
TABLE_CODE_POINTS = 0x10000
OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3  # character classes of the GPT-2 split
TOO_LARGE, DROPPED = 1, 2  # flags of rows the compiled encoder encodes (see `_bytelevel_bpe`)
PAIR_HASH = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: Fibonacci hashing of (left, right) token pairs


@cache
def byte_symbols() -> tuple[str, ...]:
    """GPT-2's byte -> printable character table used by byte-level BPE (index = byte value)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    extra = np.cumsum([b not in printable for b in range(256)]) - 1  # the k-th unprintable byte -> chr(256 + k)
    return tuple(chr(b) if b in printable else chr(256 + int(extra[b])) for b in range(256))


@cache
def byte_values() -> dict[str, int]:
    """The inverse of `byte_symbols`: symbol -> byte value."""
    return {symbol: b for b, symbol in enumerate(byte_symbols())}


def token_bytes(token: str) -> bytes:
    """The bytes the byte-level decoder makes of one vocabulary token: its byte symbols' bytes, or, for a token
    with a character that is not a byte symbol (the reference's initial alphabet holds such characters), the
    token's own UTF-8."""
    inverse = byte_values()
    if all(c in inverse for c in token):
        return bytes(inverse[c] for c in token)
    return token.encode("utf-8")


def symbols_to_strings(codes: np.ndarray) -> list[str]:
    """Code points `[N, L]` (all rows the same length, no surrogates) -> N strings, via one UTF-32 decode."""
    n, length = codes.shape
    text = np.ascontiguousarray(codes, dtype="<u4").tobytes().decode("utf-32-le")
    return [text[i * length : (i + 1) * length] for i in range(n)]


def string_points(text: str) -> np.ndarray:
    """A string -> its code points `[len(text)]` int64 (the inverse of `symbols_to_strings`)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)


def utf8_bytes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Code points `[...]` (below 0x110000) -> (UTF-8 length `[...]` int8, the bytes `[..., 4]` int16, -1 after the
    last), computed as `str.encode("utf-8", "surrogatepass")` would."""
    cp = np.asarray(points, dtype=np.int64)
    n_bytes = (1 + (cp >= 0x80) + (cp >= 0x800) + (cp >= 0x10000)).astype(np.int8)
    lead = np.choose(n_bytes - 1, [cp, 0xC0 | (cp >> 6), 0xE0 | (cp >> 12), 0xF0 | (cp >> 18)])
    out = np.full((*cp.shape, 4), -1, dtype=np.int16)
    out[..., 0] = lead
    for j in range(1, 4):  # continuation bytes: 6 bits each, most significant first
        shift = 6 * (n_bytes.astype(np.int64) - 1 - j)
        out[..., j] = np.where(shift >= 0, 0x80 | ((cp >> np.maximum(shift, 0)) & 0x3F), -1)
    return n_bytes, out


@cache
def table_bytes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """`utf8_bytes` of the code points `0 .. n - 1`, once per process (read-only)."""
    n_bytes, raw = utf8_bytes(np.arange(n))
    n_bytes.flags.writeable = raw.flags.writeable = False
    return n_bytes, raw


def char_classes(n: int, pre_tokenizer) -> np.ndarray:
    """Class of each code point `< n` as the GPT-2 pattern sees it (\\p{L}, \\p{N}, \\s, anything else).

    From Python's Unicode tables; code points those tables call unassigned (newer Unicode versions than this
    Python's may assign them) are asked of the tokenizer's own pre-tokenizer. The classes are the same for every
    tokenizer the compiled loop accepts (ByteLevel with the GPT-2 pattern), so they are computed once per process."""
    global _CLASSES
    done = len(_CLASSES)
    if n > done:
        grown = np.zeros(n, dtype=np.int8)
        grown[:done] = _CLASSES
        for cp in range(done, n):
            cat = unicodedata.category(chr(cp))
            if cp in (9, 10, 11, 12, 13, 0x85) or cat in ("Zs", "Zl", "Zp"):
                grown[cp] = SPACE
            elif cat[0] == "L":
                grown[cp] = LETTER
            elif cat[0] == "N":
                grown[cp] = NUMBER
            elif cat == "Cn":
                c = chr(cp)
                joins = [len(pre_tokenizer.pre_tokenize_str(p + c + p)) == 1 for p in ("a", "1", "#")]
                grown[cp] = LETTER if joins[0] else NUMBER if joins[1] else OTHER if joins[2] else SPACE
        _CLASSES = grown
    return _CLASSES[:n]


_CLASSES = np.zeros(0, dtype=np.int8)
