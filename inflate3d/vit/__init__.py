"""The ViT family: 2D ViTs (timm / DeiT, torchvision, Hugging Face) into TimeSformer (mmaction2's
names, natively) and ViViT (Hugging Face ``VivitModel``), with their naming schemes and proofs.

Parts: ``vit2d`` (the 2D sources in one canonical naming), ``reference`` (a reference 2D ViT),
``networks`` (TimeSformer, ViViT), ``shapes`` (their state-dict shapes from the settings, torch-free),
``kernels`` (tubelet kernels, position embeddings), ``schemes`` (two-way key tables), ``inflation``
(the plan), ``proof`` (static-clip checks), ``hf`` (Hugging Face folders), ``family`` (the named
archs and the hooks of ``inflate3d.families``). ``family``, ``vit2d``, ``shapes``, ``schemes`` and
``hf`` import without torch (``inspect`` describes a file from its structure alone).
"""
