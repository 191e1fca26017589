"""A torch zip's central directory and stored members, read with ``struct`` alone.

``zipfile`` costs ``inspect`` about 6 ms of a budget of about 12 (its import, then a ``ZipInfo``
for each of a checkpoint's thousand members). This reader takes the zips ``torch.save`` writes:
no archive comment, nothing prepended, no extra fields or encryption in the directory, members
stored. It reads them as ``zipfile`` does (the zip64 end record's counts where there is one, the
same name decoding, the local header's name checked, the CRC-32 of what is read), and returns
None for anything else, so that ``zipfile`` reads that file and its answer or error stands.
"""
from __future__ import annotations

import os
import struct

_END = struct.Struct("<4s4H2LH")  # end of central directory, 22 bytes
_LOCATOR = struct.Struct("<4sLQL")  # zip64 end of central directory locator, 20 bytes
_END64 = struct.Struct("<4sQ2H2L4Q")  # zip64 end of central directory, 56 bytes
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")  # a central directory entry, 46 bytes
_LOCAL = struct.Struct("<4s2B4HL2L2H")  # a local file header, 30 bytes
_UTF8_NAME, _REFUSED_FLAGS = 0x800, 0x1 | 0x20 | 0x40  # encrypted, patched, strongly encrypted
MAX_EXTRACT_VERSION = 63  # zipfile's


class ZipMember:
    """A member as ``zipfile.ZipInfo`` names its fields (``torch_zip`` reads either)."""

    __slots__ = ("filename", "flag_bits", "compress_type", "CRC", "compress_size", "file_size", "header_offset")

    def __init__(self, filename: str, flag_bits: int, compress_type: int, crc: int, compress_size: int,
                 file_size: int, header_offset: int) -> None:
        self.filename, self.flag_bits, self.compress_type, self.CRC = filename, flag_bits, compress_type, crc
        self.compress_size, self.file_size, self.header_offset = compress_size, file_size, header_offset


def read_directory(fd: int, size: int) -> list[ZipMember] | None:
    """The members of the zip open as ``fd`` (``size`` bytes), in directory order; None when this
    reader does not vouch for the file (``zipfile`` decides)."""
    if size < _END.size:
        return None
    end = os.pread(fd, _END.size, size - _END.size)
    sig, _, _, _, _, cd_size, cd_offset, comment = _END.unpack(end)
    if sig != b"PK\x05\x06" or comment:
        return None
    at = size - _END.size  # where the directory must end (no data prepended to the zip)
    if at >= _LOCATOR.size + _END64.size:
        locator = os.pread(fd, _LOCATOR.size, at - _LOCATOR.size)
        if locator[:4] == b"PK\x06\x07":
            _, disk, _, disks = _LOCATOR.unpack(locator)
            if disk != 0 or disks > 1:
                return None
            record = _END64.unpack(os.pread(fd, _END64.size, at - _LOCATOR.size - _END64.size))
            if record[0] == b"PK\x06\x06":  # zipfile takes the zip64 record's values
                cd_size, cd_offset = record[8], record[9]
                at -= _LOCATOR.size + _END64.size
    if cd_offset + cd_size != at:
        return None
    data = os.pread(fd, cd_size, cd_offset)
    if len(data) != cd_size:
        return None
    members: list[ZipMember] = []
    pos, unpack = 0, _CENTRAL.unpack_from
    while pos < cd_size:
        if pos + _CENTRAL.size > cd_size:
            return None
        (sig, _, _, extract_version, _, flags, method, _, _, crc, csize, usize, name_len, extra_len, comment_len,
         _, _, _, offset) = unpack(data, pos)
        if sig != b"PK\x01\x02" or extra_len or flags & _REFUSED_FLAGS or extract_version > MAX_EXTRACT_VERSION:
            return None
        start = pos + _CENTRAL.size
        raw = data[start:start + name_len]
        try:
            name = raw.decode("utf-8" if flags & _UTF8_NAME else "cp437")
        except UnicodeDecodeError:
            return None
        if "\0" in name:  # ZipInfo cuts a name at NUL
            return None
        members.append(ZipMember(name, flags, method, crc, csize, usize, offset))
        pos = start + name_len + comment_len
    return members if pos == cd_size else None


def local_header(fd: int, offset: int) -> tuple[int, int, int] | None:
    """(flags, name length, extra field length) of the local header at ``offset``, or None when
    none is there. A member's bytes start after it: its name and extra field may differ in
    length from the central directory's."""
    head = os.pread(fd, _LOCAL.size, offset)
    if len(head) != _LOCAL.size:
        return None
    sig, _, _, flags, _, _, _, _, _, _, name_len, extra_len = _LOCAL.unpack(head)
    return (flags, name_len, extra_len) if sig == b"PK\x03\x04" else None


def data_start(fd: int, header_offset: int) -> int | None:
    """The file offset of the bytes of the member whose local header is at ``header_offset``."""
    head = local_header(fd, header_offset)
    return None if head is None else header_offset + _LOCAL.size + head[1] + head[2]


def read_stored(fd: int, member: ZipMember) -> bytes | None:
    """A stored member's bytes, its local header and CRC-32 checked as ``zipfile`` checks them;
    None when ``zipfile`` must read it (compressed, or anything that does not check out)."""
    import zlib

    if member.compress_type != 0 or member.compress_size != member.file_size:
        return None
    head = local_header(fd, member.header_offset)
    if head is None:
        return None
    flags, name_len, extra_len = head
    start = member.header_offset + _LOCAL.size
    raw = os.pread(fd, name_len, start)
    try:
        if raw.decode("utf-8" if flags & _UTF8_NAME else "cp437") != member.filename:
            return None
    except UnicodeDecodeError:
        return None
    data = os.pread(fd, member.file_size, start + name_len + extra_len)
    if len(data) != member.file_size or zlib.crc32(data) != member.CRC:
        return None
    return data
