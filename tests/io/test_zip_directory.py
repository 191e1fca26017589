"""``io.zip_directory``: the struct-only reader of the zips torch writes, against ``zipfile``. On
the files it takes it must list the same members and read the same bytes; every file it does not
vouch for goes to ``zipfile``, and the structure reader then answers exactly as it did with
``zipfile`` alone."""
from __future__ import annotations

import os
import struct
import zipfile

import pytest
import torch

from inflate3d.errors import Inflate3dError
from inflate3d.io import torch_zip, zip_directory
from inflate3d.io.structure import NeedsTorch, read_structure
from inflate3d.io.zip_directory import read_directory, read_stored

FIELDS = ("filename", "flag_bits", "compress_type", "CRC", "compress_size", "file_size", "header_offset")


def _saved(tmp_path, name="net.pth"):
    g = torch.Generator().manual_seed(3)
    path = tmp_path / name
    torch.save({"state_dict": {f"layer{i}.weight": torch.randn(4 + i, 3, generator=g) for i in range(12)},
                "meta": {"epoch": 7}}, path)
    return path


def _listing(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_directory(fd, os.fstat(fd).st_size), fd
    except BaseException:
        os.close(fd)
        raise


def test_a_torch_zip_lists_and_reads_as_zipfile_does(tmp_path):
    path = _saved(tmp_path)
    members, fd = _listing(path)
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            assert members is not None and len(members) == len(infos) > 12
            assert [[getattr(m, f) for f in FIELDS] for m in members] == [[getattr(i, f) for f in FIELDS] for i in infos]
            for m in members:
                assert read_stored(fd, m) == z.read(m.filename), m.filename
    finally:
        os.close(fd)
    tail = path.read_bytes()[-22 - 20 - 56:]
    assert tail[:4] == b"PK\x06\x06" and tail[56:60] == b"PK\x06\x07"  # torch writes the zip64 end records


def _outcome(path):
    try:
        ckpt = read_structure(path)
    except (Inflate3dError, NeedsTorch) as e:
        return type(e).__name__, str(e)
    return {k: (t.shape, t.dtype) for k, t in ckpt.tensors.items()}, ckpt.container, ckpt.dropped


def _with_zipfile_only(monkeypatch, path):
    with monkeypatch.context() as m:
        m.setattr(zip_directory, "read_directory", lambda fd, size: None)
        return _outcome(path)


def _rewrite(path, edit):
    """The zip rewritten by zipfile, each (ZipInfo, bytes) through ``edit``."""
    with zipfile.ZipFile(path) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(path, "w") as z:
        for info, payload in items:
            z.writestr(*edit(info, payload))


def _data_pkl(path):
    with zipfile.ZipFile(path) as z:
        return next(i for i in z.infolist() if i.filename.endswith("data.pkl"))


def _comment(path):
    with zipfile.ZipFile(path, "a") as z:
        z.comment = b"made by hand"


def _prepended(path):
    path.write_bytes(b"#!/bin/sh\n" + path.read_bytes())


def _deflated(path):
    def edit(info, payload):
        info.compress_type = zipfile.ZIP_DEFLATED
        return info, payload
    _rewrite(path, edit)


def _extra_field(path):
    def edit(info, payload):
        info.extra = struct.pack("<HH4s", 0xCAFE, 4, b"abcd")
        return info, payload
    _rewrite(path, edit)


def _bad_crc(path):
    info = _data_pkl(path)
    raw = bytearray(path.read_bytes())
    at = raw.index(b"layer3.weight", info.header_offset + 30)
    raw[at:at + 6] = b"LAYER3"  # still a valid pickle, no longer the bytes the zip's CRC covers
    path.write_bytes(bytes(raw))


def _local_name(path):
    info = _data_pkl(path)
    raw = bytearray(path.read_bytes())
    at = info.header_offset + 30 + len(info.filename) - len("data.pkl")
    raw[at:at + 4] = b"DATA"  # the local header's name differs from the directory's
    path.write_bytes(bytes(raw))


def _rewritten(path):
    _rewrite(path, lambda info, payload: (info, payload))


# (how the file is made, whether the fast reader vouches for it)
CASES = {"as torch writes it": (lambda p: None, True), "rewritten by zipfile": (_rewritten, True),
         "an archive comment": (_comment, False), "bytes before the zip": (_prepended, False),
         "deflated members": (_deflated, "listed"), "an extra field in the directory": (_extra_field, False),
         "data.pkl's CRC-32 wrong": (_bad_crc, "listed"), "the local header's name differs": (_local_name, "listed")}


@pytest.mark.parametrize("case", list(CASES))
def test_the_structure_reader_answers_as_with_zipfile_alone(tmp_path, monkeypatch, case):
    make, vouched = CASES[case]
    path = _saved(tmp_path)
    make(path)
    members, fd = _listing(path)
    try:
        listed = members is not None
        read = listed and all(read_stored(fd, m) is not None for m in members if m.filename.endswith("data.pkl"))
    finally:
        os.close(fd)
    # the fast reader takes the file (True), lists it but leaves data.pkl to zipfile ("listed"), or declines
    assert (read if vouched is True else listed and not read if vouched == "listed" else not listed), (listed, read)
    assert _outcome(path) == _with_zipfile_only(monkeypatch, path)


def test_zipfile_is_not_imported_for_a_torch_zip(tmp_path):
    import subprocess
    import sys

    path = _saved(tmp_path)
    code = ("import sys\nfrom inflate3d.io.structure import read_structure\nread_structure(sys.argv[1])\n"
            "print('zipfile' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out


def test_a_storage_size_is_read_from_the_directory(tmp_path):
    """The directory the fast reader lists is the one the extent checks use."""
    path = _saved(tmp_path)
    ckpt, layouts = torch_zip.torch_zip_layout(path)
    with zipfile.ZipFile(path) as z:
        sizes = {i.filename: i.file_size for i in z.infolist()}
    assert {l.member.name: l.member.size for l in layouts.values()} == \
        {n: s for n, s in sizes.items() if "/data/" in n}
    assert ckpt.tensors["layer11.weight"].shape == (15, 3)
