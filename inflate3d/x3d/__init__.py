"""X3D (Feichtenhofer 2020): mmaction2's ``X3D`` + ``X3DHead`` as native networks, and two-way
conversion with PySlowFast's ``x3d`` and pytorchvideo's ``create_x3d`` names. The hooks the commands
use are in ``family``."""
