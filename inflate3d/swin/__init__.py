"""Video Swin (Liu et al. 2022): mmaction2's ``SwinTransformer3D`` and its recognizer, inflated from
any 2D Swin (Microsoft, timm, torchvision, Hugging Face, mmpretrain) and converted to torchvision's
``swin3d_*`` names. The commands reach it through :mod:`inflate3d.swin.family`."""
