"""The PRM on the C++ core (`mobpose._core.PRMNative`): the `native` inference backend of the refinement.

`NativePRM.from_file` takes what `mobpose.load_model` takes, a shipped name or a checkpoint path
(kind 'weights' or 'training'), verifies it the same way (the manifest's file checksum for a shipped
name, the stored tensor checksum for any file; with numpy alone, `mobpose.safetensors_np`), reads the PRM
config from the file's metadata, and hands the file to C++, which reads the weights by their PyTorch
names and checks every shape.

- `forward(window)`: (T, J, 3) mm -> (T, J, 3) mm, the maths of `PRM.forward` on a batch of one (also
  (B, T, J, 3) -> (B, T, J, 3)).
- `step(pose)`: streaming, causal models only. The newest frame's (J, 3) pose in, its refined pose
  out: what `forward` gives at the last position of the window of the last T poses, the window being
  filled by repeating the stream's first pose until T poses have arrived (`refine_clip`'s clip edge).
  Only the rows the newest frame's output depends on are computed (after the last temporal block, the
  newest frame's; in the last temporal block, keys and values of every frame but the rest for the
  newest frame only). A key/value cache across steps would not be exact: every frame moves one
  position per step, and its tokens depend on the position (frame_pos, and the temporal prior).
- `reset()`: a new stream.

Poses are root-relative camera-space millimetres, any real dtype (converted to float32); a wrong shape
or a NaN/Inf raises ValueError naming the argument. One `NativePRM` serves one stream at a time (its
calls are serialised); the GIL is released while it computes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NativePRM"]

logger = logging.getLogger(__name__)

_CONFIG_KEYS = ("num_joints", "num_frames", "dim", "heads", "blocks", "mlp_ratio", "prior", "lam", "learn_adj",
                "causal", "input_scale")


def _as_poses(x, name: str, shape: tuple[int, ...], dims: str) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype == np.float32 and x.shape == shape and x.flags.c_contiguous:
        return x  # as the core takes it (it checks the values)
    from ..ops import _as_f32

    with np.errstate(over="ignore"):  # beyond float32's range becomes Inf, which the core rejects by index
        arr = _as_f32(x, name, len(shape), dims)
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {dims} = {shape}, got {arr.shape}")
    return arr


class NativePRM:
    """A PRM run by the C++ core. Build it with `NativePRM.from_file`.

    Args:
        core: the `mobpose._core.PRMNative`.
        config: the PRM config (`mobpose.models.prm.config_dict` form).
        source: where the weights came from (for messages).
    """

    def __init__(self, core, config: dict[str, Any], source: str = "") -> None:
        self._core = core
        self.config = dict(config)
        self.source = source
        self._pose_shape = (core.num_joints, 3)
        self._window_shape = (core.num_frames, core.num_joints, 3)

    @classmethod
    def from_file(
        cls,
        name: str | os.PathLike,
        *,
        num_threads: int = 1,
        weights_dir: str | os.PathLike | None = None,
    ) -> NativePRM:
        """The PRM of a shipped name or a checkpoint file (kind 'weights' or 'training').

        Args:
            name: a manifest name (see `mobpose.list_pretrained`) or a .safetensors checkpoint path.
            num_threads: threads of each call (< 1: all cores). One thread is fastest for one stream
                on a busy machine; the model is small.
            weights_dir: the shipped weights folder (default: the package's).

        Raises:
            ValueError: unknown name; the file holds another model than a PRM.
            FileNotFoundError: no such file, or a listed file is missing.
            CheckpointError: the file fails its checksum, or its tensors do not match its PRM config
                (the message names the file and the tensor).
        """
        from .. import _core, pretrained
        from ..safetensors_np import CheckpointError, verify

        folder = weights_dir or pretrained.WEIGHTS_DIR
        text = os.fspath(name)
        if isinstance(name, str) and text in pretrained.list_pretrained(folder):
            entry = pretrained.pretrained_info(text, folder)
            path = Path(entry["path"])
            if not path.is_file():
                raise FileNotFoundError(f"pretrained weights {text!r}: {path} is missing; the mobpose install is "
                                        "incomplete (reinstall it)")
            pretrained._verify_file(path, entry)
        else:
            path = Path(text)
            if not path.is_file() and not (text.endswith(".safetensors") or os.sep in text or "/" in text):
                pretrained.pretrained_info(text, folder)  # raises: unknown name, listing the shipped ones
        meta = verify(path)  # the stored tensor checksum, with numpy alone
        config = meta["config"]
        missing = [k for k in _CONFIG_KEYS if not isinstance(config, dict) or k not in config]
        if missing:
            raise ValueError(f"{path} holds model {meta['model']!r}, not a PRM (its config lacks {missing})")
        prefix = "model." if meta["kind"] == "training" else ""
        kwargs = {k: config[k] for k in _CONFIG_KEYS}
        try:
            core = _core.PRMNative(str(path), **kwargs, prefix=prefix, num_threads=num_threads)
        except RuntimeError as exc:  # a tensor missing, misshapen or unexpected for the config
            raise CheckpointError(str(exc)) from exc
        logger.info("native PRM %s (%s, T=%d, %s, %s) from %s, kernel %s", meta["model"], meta["kind"],
                    config["num_frames"], "causal" if config["causal"] else "centred", config["blocks"], path,
                    core.kernel)
        return cls(core, config, str(path))

    @property
    def num_frames(self) -> int:
        """T, the window length."""
        return self._core.num_frames

    @property
    def num_joints(self) -> int:
        """J."""
        return self._core.num_joints

    @property
    def causal(self) -> bool:
        """Whether a frame's output depends on past frames only (then `step` works)."""
        return self._core.causal

    @property
    def frames_seen(self) -> int:
        """Poses fed to `step` since the last `reset`."""
        return self._core.frames_seen

    def forward(self, window) -> np.ndarray:
        """Refines a window: (T, J, 3) mm -> (T, J, 3) float32 mm; (B, T, J, 3) -> (B, T, J, 3).

        Does not touch the stream of `step`.
        """
        if np.ndim(window) == 4:
            arr = _as_poses(window, "window", (np.shape(window)[0], *self._window_shape), "(B, T, J, 3)")
        else:
            arr = _as_poses(window, "window", self._window_shape, "(T, J, 3)")
        return self._core.forward(arr)

    def step(self, pose) -> np.ndarray:
        """Feeds the newest frame's pose (J, 3) mm and returns its refined pose (J, 3) float32 mm.

        Raises:
            RuntimeError: the PRM is centred (its output for a frame needs later frames).
            ValueError: a wrong shape or a non-finite value (the stream is left unchanged).
        """
        if not self.config["causal"]:
            raise RuntimeError(
                f"step() needs a causal PRM; {Path(self.source).name or 'this one'} is centred (its output for a "
                "frame depends on later frames): refine windows with forward()"
            )
        return self._core.step(_as_poses(pose, "pose", self._pose_shape, "(J, 3)"))

    def reset(self) -> None:
        """Starts a new stream: the next `step` is its first frame."""
        self._core.reset()

    def __repr__(self) -> str:
        c = self.config
        return (f"NativePRM(T={c['num_frames']}, J={c['num_joints']}, dim={c['dim']}, blocks={c['blocks']!r}, "
                f"{'causal' if c['causal'] else 'centred'}, source={self.source!r})")
