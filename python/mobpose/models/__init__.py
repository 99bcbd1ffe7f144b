"""mobpose models (PyTorch). Each family lives in its own module and registers its variants.

`create_model(name, **kw)` builds one; `list_models()` names them. Importing this package imports
torch.
"""

from . import convnextpose, prm, videopose3d  # noqa: F401  (registers the variants)
from .registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model"]
