"""A small model registry: `register_model` on a builder, `create_model(name, **kw)`, `list_models()`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["create_model", "list_models", "register_model"]

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Registers a builder under its function name (e.g. `convnextpose_xs`)."""
    name = fn.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = fn
    return fn


def list_models(prefix: str = "") -> list[str]:
    """Names of the registered models, sorted, optionally those starting with `prefix`."""
    return sorted(n for n in _BUILDERS if n.startswith(prefix))


def create_model(name: str, **kwargs: Any):
    """Builds a registered model by name; keyword arguments go to its builder."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; registered: {', '.join(list_models())}")
    return _BUILDERS[name](**kwargs)
