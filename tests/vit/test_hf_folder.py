"""Hugging Face folders are outputs like any other: refused when present without --force, replaced
whole with it, never left half-written; and the loader reads them (config.json + model.safetensors)."""
from __future__ import annotations

import json

from inflate3d.io.load import load_checkpoint

from vit_peers import run


def test_existing_folder_is_refused_then_replaced_with_force(vit_file, tmp_path):
    _, path = vit_file
    out = tmp_path / "tsf"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run("inflate", path, "--arch", "timesformer_b", "--to", "huggingface", "-o", out, ok=(2,))
    assert "already exists; pass --force" in result.output and (out / "keep.txt").read_text() == "mine"
    run("inflate", path, "--arch", "timesformer_b", "--to", "huggingface", "-o", out, "--force")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["tsf"]  # no temporary folder left behind


def test_loader_reads_a_folder_with_its_config(vit_file, tmp_path):
    _, path = vit_file
    out = tmp_path / "tsf"
    run("inflate", path, "--arch", "timesformer_b", "--to", "huggingface", "-o", out)
    ckpt = load_checkpoint(out)
    assert ckpt.container == "huggingface folder" and "encoder.layer.1.temporal_dense.weight" in ckpt.tensors
    assert json.loads(ckpt.metadata["hf_config"])["model_type"] == "timesformer"
    assert ckpt.metadata["arch"] == "timesformer_b"
    info = json.loads(run("inspect", out, "--json").stdout)
    assert info["scheme"] == "huggingface" and info["architecture"]["matches"] == "timesformer_b"


def test_resnet_arch_has_no_hugging_face_output(tmp_path):
    result = run("inflate", "--arch", "i3d_r18", "--to", "huggingface", "-o", tmp_path / "x", ok=(2,))
    assert "has no Hugging Face counterpart" in result.output
