"""The ViT family: 2D ViTs (timm / DeiT, torchvision, Hugging Face) into TimeSformer (mmaction2's
names, natively) and ViViT (Hugging Face ``VivitModel``), with their naming schemes and proofs.

Parts: ``vit2d`` (the 2D sources in one canonical naming, and a reference ViT), ``networks``
(TimeSformer, ViViT, named archs), ``kernels`` (tubelet kernels, position embeddings), ``schemes``
(two-way key tables), ``inflation`` (the plan), ``proof`` (static-clip checks), ``hf`` (Hugging
Face folders), ``family`` (the hooks of ``inflate3d.families``).
"""
