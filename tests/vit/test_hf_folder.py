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


def test_an_edited_metadata_record_is_one_line_naming_the_file(vit_file, tmp_path):
    """``arch_overrides`` and ``hf_config`` are JSON objects that inspect, convert and verify look
    names up in: invalid JSON, another JSON value or a config without its sizes was an internal
    error (exit 3); now it is the file's error (exit 2), and the entry is named."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    _, path = vit_file
    inflated = tmp_path / "ts.safetensors"
    run("inflate", path, "--arch", "timesformer_b", "-o", inflated)
    with safe_open(str(inflated), "pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    cases = [("arch_overrides", "not json", "is not valid JSON"), ("arch_overrides", "[1, 2]", "is a JSON list, not an object"),
             ("hf_config", "{oops", "is not valid JSON"), ("hf_config", "[]", "is a JSON list, not an object"),
             ("hf_config", '{"model_type": "timesformer"}', "its Hugging Face config has no image_size, patch_size")]
    for key, value, says in cases:
        edited = tmp_path / "edited.safetensors"
        record = {k: v for k, v in metadata.items() if k != "arch_overrides"} if key == "hf_config" else dict(metadata)
        save_file(tensors, edited, metadata={**record, key: value})
        for args in (("inspect", edited), ("convert", edited, "-o", tmp_path / "out.safetensors"),
                     ("verify", edited, "--against", path)):
            result = run(*args, ok=(2,))
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and "edited.safetensors: " in lines[0] and says in lines[0], (key, value, args, lines)
        assert not (tmp_path / "out.safetensors").exists()
