"""mobpose models (PyTorch). Each family lives in its own module and registers its variants.

`create_model(name, **kw)` builds one; `list_models()` names them. The families (and torch) are imported
when one of these is first used, so that the numpy-only modules here (:mod:`.decode`) import without torch.
"""

from __future__ import annotations

import importlib

__all__ = ["create_model", "list_models", "register_model"]


def __getattr__(name: str):
    if name in __all__:
        for family in ("convnextpose", "poseresnet", "prm", "rtmo", "videopose3d"):  # registers the variants
            importlib.import_module(f".{family}", __name__)
        return getattr(importlib.import_module(".registry", __name__), name)
    raise AttributeError(f"module 'mobpose.models' has no attribute {name!r}")
