"""The `mobpose` JSON metadata entry of exported .tflite files (reading needs only ai-edge-litert)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["METADATA_NAME", "read_metadata", "write_metadata"]

METADATA_NAME = "mobpose"
"""Name of the metadata entry (a JSON object) that mobpose writes into every exported file."""


def write_metadata(path: str | os.PathLike, meta: dict) -> None:
    """Adds (or replaces) the JSON metadata entry `mobpose` of a .tflite file, in place and atomically."""
    import json

    import numpy as np
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    path = Path(path)
    model = flatbuffer_utils.read_model(str(path))
    model.metadata = [m for m in (model.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())]
    buf = schema.BufferT()
    buf.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
    model.buffers.append(buf)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    tmp = path.with_suffix(path.suffix + ".tmp")
    flatbuffer_utils.write_model(model, str(tmp))
    os.replace(tmp, path)


def read_metadata(path: str | os.PathLike) -> dict:
    """The `mobpose` metadata of an exported file ({} if it has none)."""
    import json

    from ai_edge_litert import schema_py_generated as schema

    data = Path(path).read_bytes()
    model = schema.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        md = model.Metadata(i)
        if md.Name() and md.Name().decode() == METADATA_NAME:
            return json.loads(bytes(model.Buffers(md.Buffer()).DataAsNumpy()).decode())
    return {}
