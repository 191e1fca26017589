"""The family modules (X3D, Swin, ViT) import, and register their archs and builders, without
torch: ``inspect`` loads them all to describe any checkpoint. Building a network imports it."""
from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from inflate3d import families
from inflate3d.slowfast.archs import BUILDERS, all_archs, state_dict_shapes
mods = families.load_all()
assert [m.NAME for m in mods] == ['x3d', 'swin', 'vit'], mods
names = all_archs()
assert {'x3d_s', 'swin3d_t', 'timesformer_b', 'vivit_b'} <= set(names)
assert {'x3d', 'swin', 'timesformer', 'vivit'} <= set(BUILDERS)
assert state_dict_shapes('x3d_m', num_classes=400)['cls_head.fc2.weight'] == (400, 2048)  # the shipped table
from inflate3d.vit import shapes, vit2d, hf
from inflate3d.swin import config, schemes
from inflate3d.x3d import convert, steps
print('torch' in sys.modules)
from inflate3d import build_model
build_model('x3d_xs', num_classes=3, device='meta', init=False)
print('torch' in sys.modules)
"""


def test_family_modules_import_without_torch():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True"]
