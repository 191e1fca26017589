"""Naming schemes: one key table per codebase against the native (mmaction2) names.

Any scheme converts to any other through the native names. Each scheme also says how its
SlowFast head orders its input columns and whether its fusion has a BN (structural facts that the
converter handles explicitly, not through renaming).
"""
from __future__ import annotations

from ...records import FrozenRecord
from .mmaction2 import MMACTION2
from .pyslowfast import CAFFE2, CAFFE2_SINGLE, PYSLOWFAST, PYSLOWFAST_SINGLE
from .pytorchvideo import PYTORCHVIDEO, PYTORCHVIDEO_POOLED, PYTORCHVIDEO_SINGLE, has_pool_block
from .table import KeyTable, Template
from .torchvision3d import TORCHVISION3D
from .torchvision_video import TORCHVISION_R2PLUS1D, TORCHVISION_VIDEO
from .tsm import TSM_ORIGINAL


class Scheme(FrozenRecord):
    """``multi``: the table for two pathways (SlowFast), ``single`` for one (I3D, Slow-only);
    ``head_slow_first``: SlowFast head columns [slow, fast] (mmaction2's are [fast, slow]);
    ``fuse_has_bn``: the fast->slow fusion is conv+BN+ReLU (native lateral_norm=True);
    ``single_pooled``: one pathway whose stage numbering shows the pool after the first stage
    (native with_pool2); ``single_factorised``: one pathway of factorised (2+1)D convs, where the
    scheme nests them (torchvision r2plus1d_18)."""

    __slots__ = ("name", "multi", "single", "head_slow_first", "fuse_has_bn", "description", "single_pooled",
                 "single_factorised")
    name: str
    multi: KeyTable | None
    single: KeyTable | None
    head_slow_first: bool
    fuse_has_bn: bool
    description: str
    single_pooled: KeyTable | None
    single_factorised: KeyTable | None

    def __init__(self, name: str, multi: KeyTable | None, single: KeyTable | None, head_slow_first: bool,
                 fuse_has_bn: bool, description: str, single_pooled: KeyTable | None = None,
                 single_factorised: KeyTable | None = None) -> None:
        self._set(name=name, multi=multi, single=single, head_slow_first=head_slow_first, fuse_has_bn=fuse_has_bn,
                  description=description, single_pooled=single_pooled, single_factorised=single_factorised)

    def table(self, two_pathways: bool, pooled: bool = False, factorised: bool = False) -> KeyTable | None:
        if two_pathways:
            return self.multi
        if factorised and self.single_factorised is not None:
            return self.single_factorised
        return self.single_pooled if pooled and self.single_pooled is not None else self.single

    def factorised_names(self, keys) -> bool:
        """Do these names nest factorised convs (torchvision's r2plus1d stem: ``stem.3.weight``)?"""
        return self.single_factorised is not None and "stem.3.weight" in set(keys)

    def pooled_names(self, keys) -> bool:
        """Do these (single-pathway) names number their stages around a pool block?"""
        return self.single_pooled is not None and has_pool_block(keys)


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("mmaction2", MMACTION2, MMACTION2, False, False,
           "mmaction2 Recognizer3D (backbone.*, cls_head.*), the native names"),
    Scheme("pyslowfast", PYSLOWFAST, PYSLOWFAST_SINGLE, True, True,
           "PySlowFast (s1.pathway0_stem, s2.pathway0_res0.branch2.a, head.projection)"),
    Scheme("caffe2", CAFFE2, CAFFE2_SINGLE, True, True,
           "PySlowFast's Caffe2 blobs (conv1_w, res2_0_branch2a_w, t_pool1_subsample_w, pred_w)"),
    Scheme("pytorchvideo", PYTORCHVIDEO, PYTORCHVIDEO_SINGLE, True, True,
           "pytorchvideo create_slowfast / create_resnet (blocks.N...)", PYTORCHVIDEO_POOLED),
    Scheme("torchvision3d", None, TORCHVISION3D, False, False,
           "torchvision names with 5-D kernels (conv1.weight, layer1.0.conv1.weight, fc)"),
    Scheme("torchvision_video", None, TORCHVISION_VIDEO, False, False,
           "torchvision.models.video ResNets (stem.0.weight, layer1.0.conv1.0.weight, fc)",
           single_factorised=TORCHVISION_R2PLUS1D),
    Scheme("torchvision", None, TORCHVISION3D, False, False,
           "torchvision 2D names (TSN), for TSM networks"),
    Scheme("tsm", None, TSM_ORIGINAL, False, False,
           "the original TSM code (base_model.layer1.0.conv1.net.weight, new_fc)"),
)}

__all__ = ["KeyTable", "SCHEMES", "Scheme", "Template"]
