"""Bytes to text: every dataset file is read as UTF-8, and any other encoding is named rather than misread.

UTF-16 and UTF-32 files are refused with their encoding named (the tool writes UTF-8 only); bytes that are not
UTF-8 are located by line, with a hint when the whole file looks like a single-byte encoding such as Latin-1.
"""

from __future__ import annotations

import codecs
import re

from ..errors import InputError

# Undecodable bytes become these lone surrogates under errors="surrogateescape"; finding one marks a bad line.
ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
MULTIBYTE = re.compile("[^\x00-\x7f\udc80-\udcff]")  # a character that took valid multi-byte UTF-8
# Checked longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"), (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"))


def check_encoding(path: str, data: bytes) -> None:
    """Refuse UTF-16 and UTF-32 text, naming the encoding.

    These are converted once by the user rather than decoded here: everything the tool writes is UTF-8, so a
    UTF-16 input could never come back "exactly as it came in", and saying so up front beats an export whose
    bytes silently differ from the source."""
    found = next(((name, f"{name} with a byte-order mark") for bom, name in BOMS if data.startswith(bom)), None)
    if found is None:
        name = _wide_without_bom(data[:4096])
        found = None if name is None else (name, f"{name} without a byte-order mark")
    if found is not None:
        raise InputError(path, None, None, f"the file is {found[1]}, not UTF-8; convert it to UTF-8 (for example "
                         f"`iconv -f {found[0]} -t UTF-8 FILE > NEW_FILE`)")


def _wide_without_bom(head: bytes) -> str | None:
    """UTF-16/32 told by where the NUL bytes sit: UTF-8 text has none (JSON forbids them raw), while the ASCII
    characters of a UTF-16 LE file each leave a NUL at the odd bytes, and so on."""
    n = len(head) // 4
    if n < 2:
        return None
    nul = [head[i:4 * n:4].count(0) / n for i in range(4)]  # the share of NULs at each byte position mod 4
    if min(nul[1:]) > 0.9 and nul[0] < 0.5:
        return "UTF-32LE"
    if min(nul[:3]) > 0.9 and nul[3] < 0.5:
        return "UTF-32BE"
    even, odd = (nul[0] + nul[2]) / 2, (nul[1] + nul[3]) / 2
    if odd > 0.5 and even < 0.1:
        return "UTF-16LE"
    if even > 0.5 and odd < 0.1:
        return "UTF-16BE"
    return None


def decode(data: bytes) -> tuple[str, str | None]:
    """UTF-8 text of the file, and None; on invalid bytes, the text with them escaped and the hint to add to each
    line's error (the bad lines are reported one by one)."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        text = data.decode("utf-8-sig", errors="surrogateescape")
    # No valid multi-byte character anywhere, only bytes that are not UTF-8: the mark of a single-byte encoding
    single = MULTIBYTE.search(text) is None
    return text, "; the file looks like Latin-1 or Windows-1252: convert it to UTF-8" if single else ""


def bad_bytes(path: str, line: int, text: str, hint: str = "") -> InputError:
    match = ESCAPED_BYTE.search(text)
    byte = ord(match.group()) - 0xDC00
    return InputError(path, line, None, f"the bytes are not UTF-8 (invalid UTF-8 byte 0x{byte:02x} at column "
                      f"{match.start() + 1}){hint}")
