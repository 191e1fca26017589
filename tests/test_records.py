"""``records``: the plain classes that stand in for dataclasses on inspect's path must behave as
the dataclasses did: equality and repr by field, frozen records read-only and hashable, mutable
ones unhashable, ``replace`` keeping every other field, subclass fields after the base's."""
from __future__ import annotations

import pytest

from inflate3d.inflate.detect import ArchInfo
from inflate3d.inflate.facts import Fact
from inflate3d.io.checkpoint import Checkpoint
from inflate3d.slowfast.archs import ARCHS
from inflate3d.x3d.convert import X3DConversion


def test_a_frozen_record_is_read_only_and_hashed_by_its_fields():
    a, b = Fact(3, "file record"), Fact(3, "file record")
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Fact(3, "convention (--set x=3)") and a != Fact(4, "file record")
    assert a != (3, "file record")  # not a tuple
    with pytest.raises(AttributeError, match="read-only"):
        a.value = 4
    with pytest.raises(AttributeError, match="read-only"):
        del a.source
    assert repr(a) == "Fact(value=3, source='file record')"
    assert not a.assumed and Fact(1, "convention: ...").assumed


def test_replace_keeps_every_other_field():
    arch = ARCHS["slowfast_r50_4x16"]
    other = arch.replace(clip=(8, 224, 224))
    assert other.clip == (8, 224, 224) and arch.clip == (32, 224, 224)
    assert (other.name, other.backbone, other.head, other.origin, other.description) == \
        (arch.name, arch.backbone, arch.head, arch.origin, arch.description)
    assert other != arch and arch.replace() == arch
    with pytest.raises(TypeError):
        arch.replace(colour="red")


def test_a_mutable_record_compares_by_fields_and_is_not_hashable():
    a, b = ArchInfo("slowfast", 50), ArchInfo("slowfast", 50)
    assert a == b and a.notes == [] and a.notes is not b.notes  # a fresh list each, as default_factory gave
    a.notes.append("x")
    assert a != b
    with pytest.raises(TypeError):
        hash(a)
    with pytest.raises(AttributeError):
        a.colour = "red"  # __slots__: a misspelt field is an error, not a new attribute
    ckpt = Checkpoint("f.pth", "torch-zip", {})
    assert ckpt.metadata == {} and ckpt.dropped == [] and ckpt.extras == {} and ckpt.sha256 is None


def test_a_subclass_adds_its_fields_after_the_base():
    info = ArchInfo("x3d", 0)
    c = X3DConversion("mmaction2", "pyslowfast", False, {}, [], info, "x3d_s", {}, ["n"],
                      round_trip_in_function=len)
    assert (c.notes, c.native, c.round_trip_in_function) == (["n"], {}, len)
    assert repr(c).startswith("X3DConversion(source_scheme='mmaction2', ") and \
        repr(c).endswith("round_trip_in_function=<built-in function len>)")
    assert c.replace(arch_name="x3d_m").round_trip_in_function is len


def test_a_cache_slot_is_not_a_field():
    """A key table's rule caches whether it keeps names: two equal rules stay equal either way."""
    from inflate3d.inflate.schemes.table import Rule, Template

    sides = Template("backbone.{k**}"), Template("backbone.{k**}")
    a, b = Rule(*sides), Rule(*sides)
    assert a.keeps_names and a == b and hash(a) == hash(b) and "_keeps" not in repr(a)  # b's cache unset
    assert a.replace() == a
    numbered = Rule(Template("s{L+1}.x"), Template("s{L+1}.x"))
    assert not numbered.keeps_names  # a numbered field writes 01 as 1: not its own image
