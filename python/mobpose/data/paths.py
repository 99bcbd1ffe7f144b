"""Locating the shared data folder at run time (the data is read in place, never copied).

The data folder is found as:

1. the environment variable ``MOBPOSE_DATA_DIR`` if it is set (it is then authoritative: no search);
2. else ``<repo>/../shared/data``, found by walking up from this package and from the current
   directory and taking the first ancestor ``A`` for which ``A/shared/data`` is a directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "default_data_dir", "resolve_data_file"]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "MOBPOSE_DATA_DIR"
"""Name of the environment variable that points at the shared data folder."""


def _search_roots() -> list[Path]:
    roots = [Path(__file__).resolve().parent]
    try:
        roots.append(Path.cwd().resolve())
    except OSError:  # the current directory may have been deleted
        pass
    return roots


def default_data_dir() -> Path | None:
    """Returns the shared data folder, or None when it cannot be found.

    Returns:
        ``$MOBPOSE_DATA_DIR`` as a Path if that variable is set and non-empty (whether or not it
        exists), else the first ``A/shared/data`` directory above this package or the current
        directory, else None.
    """
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    for root in _search_roots():
        for ancestor in (root, *root.parents):
            candidate = ancestor / "shared" / "data"
            if candidate.is_dir():
                return candidate
    return None


def resolve_data_file(relative: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Resolves a data file, either an explicit ``path`` or ``relative`` under the data folder.

    Args:
        relative: Path of the file inside the data folder, e.g. ``"cmu_mocap/cmu_h36m17_120hz.npz"``.
        path: Explicit file path; when given it is used as is and ``relative`` is ignored.

    Returns:
        The existing file's path.

    Raises:
        FileNotFoundError: If the file does not exist; the message names the path(s) tried and how
            to set ``MOBPOSE_DATA_DIR``.
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"path={str(p)!r} does not exist or is not a file")
        return p
    base = default_data_dir()
    hint = (
        f"set the environment variable {DATA_DIR_ENV} to the folder that holds {relative!r} "
        f"(e.g. export {DATA_DIR_ENV}=/path/to/shared/data) or pass path= explicitly"
    )
    if base is None:
        raise FileNotFoundError(
            f"cannot find the mobpose data folder (no <ancestor>/shared/data above {Path(__file__).parent} "
            f"or the current directory, and {DATA_DIR_ENV} is not set); {hint}"
        )
    p = base / relative
    if not p.is_file():
        origin = f"${DATA_DIR_ENV}" if os.environ.get(DATA_DIR_ENV, "").strip() else "the shared data folder"
        raise FileNotFoundError(f"data file {str(p)!r} not found (looked in {origin} {str(base)!r}); {hint}")
    logger.debug("resolved data file %s", p)
    return p
