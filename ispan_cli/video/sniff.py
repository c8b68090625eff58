"""What a file's first bytes say it is, to word errors when a decoder cannot open it."""

from __future__ import annotations

from pathlib import Path

# Containers a video usually comes in: when a decoder cannot open a file that starts like one
# of these, the file is damaged or cut short rather than "not a video".
_CONTAINERS = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (0, b"RIFF", "AVI"),
    (0, b"FLV", "FLV"),
    (0, b"\x30\x26\xb2\x75", "ASF/WMV"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
)
_IMAGES = (
    (0, b"\x89PNG", "png"),
    (0, b"\xff\xd8\xff", "jpeg"),
    (0, b"BM", "bmp"),
    (8, b"WEBP", "webp"),
)


MPEG_TS = "MPEG-TS"
# an MPEG transport stream has no magic at a fixed place: a 0x47 sync byte every 188 bytes
# (every 192 in Blu-ray .m2ts, after a 4-byte timecode); three in a row are checked
_TS_PACKETS = ((0, 188), (4, 192))
_HEAD = 4 + 3 * 192


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(_HEAD)


def _match(head: bytes, table: tuple[tuple[int, bytes, str], ...]) -> str | None:
    for offset, magic, name in table:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def container_family(path: Path) -> str | None:
    """The video container family the first bytes announce, or None."""
    head = _head(path)
    if head[8:12] == b"WEBP":  # RIFF, but an image
        return None
    if any(
        len(head) > start + 2 * step and all(head[start + i * step] == 0x47 for i in range(3))
        for start, step in _TS_PACKETS
    ):
        return MPEG_TS
    return _match(head, _CONTAINERS)


def image_kind(path: Path) -> str | None:
    """The still-image format the first bytes announce, or None."""
    return _match(_head(path), _IMAGES)
