"""Conv + BN (+ ReLU) units whose children are named ``conv`` and ``bn``.

mmaction2 wraps every convolution in an mmcv ``ConvModule``; its state-dict keys therefore read
``layer1.0.conv1.conv.weight`` and ``layer1.0.conv1.bn.running_mean``. These units reproduce that
naming (and parameter order) without depending on mmcv.
"""
from __future__ import annotations

import torch
from torch import nn

Triple = tuple[int, int, int]


def triple(value: int | tuple[int, ...]) -> Triple:
    """Expand an int to a (t, h, w) triple; pass triples through."""
    if isinstance(value, int):
        return (value, value, value)
    if len(value) != 3:
        raise ValueError(f"expected an int or 3 values, got {value!r}")
    return tuple(int(v) for v in value)  # type: ignore[return-value]


class Conv3d(nn.Conv3d):
    """``nn.Conv3d``, same parameters and names, whose float32 CPU forward of a kernel wider than
    one value always runs oneDNN. For a batch of one PyTorch picks its own ``slow_conv3d`` when
    N*C*T*H <= 20480, a rule made for 2D images: SlowFast's fast pathway (8-32 channels, 32
    frames) then ran its 1x3x3 and 3x1x1 convolutions about ten times slower (8 channels at 56x56:
    12.6 vs 1.3 ms); a whole SlowFast-R50 forward (1x3x32x224x224, 2 threads) is 4-7% faster.
    Pointwise kernels keep PyTorch's choice, which is the faster one for them, and so does CPU
    autocast (which casts for ``conv3d``, not for the oneDNN op)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32 and self.padding_mode == "zeros" \
                and self.kernel_size != (1, 1, 1) and isinstance(self.padding, tuple) and torch.backends.mkldnn.is_available() \
                and torch.backends.mkldnn.enabled and x.dim() == 5 and not torch.is_autocast_enabled("cpu"):
            return torch.ops.aten.mkldnn_convolution(x, weight, bias, self.padding, self.stride, self.dilation, self.groups)
        return super()._conv_forward(x, weight, bias)


class ConvBN3d(nn.Module):
    """``Conv3d`` (no bias) -> optional ``BatchNorm3d`` -> optional ReLU.

    ``norm=False`` drops the BN (mmaction2's laterals without ``lateral_norm``); ``act=False``
    drops the ReLU (the last conv of a residual branch, downsample shortcuts); ``groups`` makes
    it channel-wise (X3D).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0,
                 dilation=1, norm: bool = True, act: bool = True, mid_channels: int | None = None,
                 bias: bool = False, groups: int = 1, temporal_first: bool = False) -> None:
        super().__init__()
        if mid_channels is not None:  # factorised: mmaction2's ConvModule with conv_cfg Conv2plus1d
            self.conv = Conv2Plus1d(in_channels, out_channels, kernel_size, mid_channels, stride=stride,
                                    padding=padding, temporal_first=temporal_first)
        else:
            self.conv = Conv3d(in_channels, out_channels, triple(kernel_size), stride=triple(stride),
                                  padding=triple(padding), dilation=triple(dilation), bias=bias,
                                  groups=groups)
        self.bn = nn.BatchNorm3d(out_channels) if norm else None
        self.relu = nn.ReLU(inplace=True) if act else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class DeConvBN3d(nn.Module):
    """``ConvTranspose3d`` -> BN -> ReLU: the time-upsampling lateral (mmaction2 ``lateral_inv``).

    The output size is pinned to ``stride * input`` so odd kernels still upsample exactly.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1,
                 padding=0) -> None:
        super().__init__()
        self.stride = triple(stride)
        self.conv = nn.ConvTranspose3d(in_channels, out_channels, triple(kernel_size),
                                       stride=self.stride, padding=triple(padding), bias=False)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, h, w = x.shape
        size = (t * self.stride[0], h * self.stride[1], w * self.stride[2])
        return self.relu(self.bn(self.conv(x, output_size=size)))


def mid_channels_2plus1d(in_channels: int, out_channels: int, kernel_size) -> int:
    """mmaction2's (and the R(2+1)D paper's) width between the spatial and the temporal conv: the
    one that gives the factorised pair the parameters of a full t x k x k conv (t taken as 3)."""
    _, kh, kw = triple(kernel_size)
    return int(3 * in_channels * out_channels * kh * kw / (in_channels * kh * kw + 3 * out_channels))


class Conv2Plus1d(nn.Module):
    """A t x k x k conv factorised as 1 x k x k (``conv_s``) -> BN (``bn_s``) -> ReLU -> t x 1 x 1
    (``conv_t``): mmaction2's ``Conv2plus1d``, torchvision's ``Conv2Plus1D``. ``temporal_first``
    runs ``conv_t`` first and ``conv_s`` second (pytorchvideo's ``Conv2plus1d``); ``bn_s`` is the
    BN between the two either way."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mid_channels: int, *,
                 stride=1, padding=0, temporal_first: bool = False) -> None:
        super().__init__()
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = triple(kernel_size), triple(stride), triple(padding)
        self.temporal_first = temporal_first
        if temporal_first:
            self.conv_t = Conv3d(in_channels, mid_channels, (kt, 1, 1), stride=(st, 1, 1),
                                    padding=(pt, 0, 0), bias=False)
            self.bn_s = nn.BatchNorm3d(mid_channels)
            self.relu = nn.ReLU(inplace=True)
            self.conv_s = Conv3d(mid_channels, out_channels, (1, kh, kw), stride=(1, sh, sw),
                                    padding=(0, ph, pw), bias=False)
            return
        self.conv_s = Conv3d(in_channels, mid_channels, (1, kh, kw), stride=(1, sh, sw),
                                padding=(0, ph, pw), bias=False)
        self.bn_s = nn.BatchNorm3d(mid_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv_t = Conv3d(mid_channels, out_channels, (kt, 1, 1), stride=(st, 1, 1),
                                padding=(pt, 0, 0), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.temporal_first:
            return self.conv_s(self.relu(self.bn_s(self.conv_t(x))))
        return self.conv_t(self.relu(self.bn_s(self.conv_s(x))))


class FrameConv2d(nn.Conv2d):
    """A 2-D conv run on every frame of a clip (N, C, T, H, W): mmaction2's C2D stores its convs
    2-D (4-D weights) and applies them frame by frame."""

    @classmethod
    def from_3d(cls, conv: nn.Conv3d) -> "FrameConv2d":
        if conv.kernel_size[0] != 1 or conv.stride[0] != 1 or conv.padding[0] != 0:
            raise ValueError("only a conv without a temporal extent runs frame by frame")
        return cls(conv.in_channels, conv.out_channels, conv.kernel_size[1:], stride=conv.stride[1:],
                   padding=conv.padding[1:], dilation=conv.dilation[1:], groups=conv.groups,
                   bias=conv.bias is not None, device=conv.weight.device, dtype=conv.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        y = super().forward(x.transpose(1, 2).reshape(n * t, c, h, w))
        return y.reshape(n, t, *y.shape[1:]).transpose(1, 2)
