"""Hostile files built on the fly (tests/test_guards.py): zip bombs, deeply nested markup.

A real bomb, not a zip whose directory merely claims a large size: the deflate stream below does
inflate to ``inflated_mb`` megabytes of zeros. It is written by hand because zipfile can only
write data it compressed itself, which would mean deflating gigabytes here. Deflate blocks ended
by a full flush do not refer back to earlier data, so the compressed form of every 1 MB of zeros
after the first is the same 1,037 bytes, repeated.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

MB = 1024 * 1024
ZEROS = bytes(MB)


def zero_bomb(inflated_mb: int) -> tuple[bytes, int, int]:
    """``(raw deflate data, CRC-32, inflated size)`` of ``inflated_mb`` MB of zeros."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = compressor.compress(ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    middle = compressor.compress(ZEROS) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.compress(ZEROS) + compressor.flush()
    crc = 0
    for _ in range(inflated_mb):
        crc = zlib.crc32(ZEROS, crc)
    return first + middle * (inflated_mb - 2) + last, crc, inflated_mb * MB


def deflated(data: bytes) -> tuple[bytes, int, int]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    return compressor.compress(data) + compressor.flush(), zlib.crc32(data), len(data)


def write_zip(path: Path, members: dict[str, tuple[bytes, int, int]], declared: dict[str, int] | None = None) -> Path:
    """A zip of ``members`` (name -> what :func:`deflated` or :func:`zero_bomb` gives); ``declared``
    overrides the inflated size the directory states for a member (a lying header)."""
    declared = declared or {}
    body, directory = bytearray(), bytearray()
    for name, (data, crc, size) in members.items():
        raw = name.encode()
        stated = declared.get(name, size)
        offset = len(body)
        body += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data), stated, len(raw), 0) + raw + data
        directory += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc, len(data), stated,
                                 len(raw), 0, 0, 0, 0, 0, offset) + raw
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), len(body), 0)
    path.write_bytes(bytes(body + directory + end))
    return path


CONTAINER = b"""<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles><rootfile full-path="content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"""
OPF = b"""<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Bomb</dc:title></metadata>
<manifest><item id="c1" href="chapter.xhtml" media-type="application/xhtml+xml"/></manifest>
<spine><itemref idref="c1"/></spine></package>"""


def epub(path: Path, chapter: tuple[bytes, int, int], declared: int | None = None) -> Path:
    members = {"mimetype": deflated(b"application/epub+zip"), "META-INF/container.xml": deflated(CONTAINER),
               "content.opf": deflated(OPF), "chapter.xhtml": chapter}
    return write_zip(path, members, {"chapter.xhtml": declared} if declared is not None else None)


CONTENT_TYPES = b"""<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>
</Types>"""
RELS = b"""<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>
</Relationships>"""


def docx(path: Path, document: tuple[bytes, int, int]) -> Path:
    members = {"[Content_Types].xml": deflated(CONTENT_TYPES), "_rels/.rels": deflated(RELS), "word/document.xml": document}
    return write_zip(path, members)


def nested(depth: int, tag: str = "div") -> str:
    """An HTML page whose body nests ``depth`` ``tag`` elements."""
    return f"<html><body>{f'<{tag}>' * depth}deep{f'</{tag}>' * depth}</body></html>"
