"""Stub of the compiled extension mobpose._core (cpp/python/core_module.cc).

Inputs are used without copying when they are C-contiguous float32 CPU arrays (numpy arrays or any
DLPack tensor). A wrong dtype raises TypeError; a wrong rank, shape, layout or an empty array raises
ValueError naming the argument. Outputs are new float32 numpy arrays. num_threads < 1 means all
hardware threads.
"""

import numpy as np
import numpy.typing as npt

def soft_argmax_3d(
    heatmaps: npt.ArrayLike, mode: str = "taylor", num_threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-argmax of (N, J, D, H, W) heatmaps.

    mode: 'exact' (softmax), 'taylor' (f(x) = 1 + x + x^2/2) or 'taylor_clamped' (f(max(x, -1))).
    Returns xyz (N, J, 3) as (width, height, depth) indices in heatmap units and peak (N, J), the
    largest normalised probability. A NaN in a joint's volume gives NaN for that joint.
    """

def mqa_prior(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    prior: npt.ArrayLike | None = None,
    prior_scale: float = 1.0,
    prior_mode: str = "mul",
    causal: bool = False,
    num_threads: int = 1,
) -> np.ndarray:
    """Multi-query attention: q (B, H, N, d), k and v (B, N, d), prior (N, N) -> (B, H, N, d).

    logits = q k^T / sqrt(d); 'mul': logits * (1 + prior_scale * prior); 'add': logits +
    prior_scale * prior; causal: token i sees tokens j <= i; softmax over j; out = p v.
    """

def set_kernel_variant(name: str) -> None:
    """Select 'auto', 'reference' (double-precision scalar) or an ISA variant ('avx2', 'avx512', 'neon')."""

def kernel_variant() -> str: ...
def available_kernel_variants() -> list[str]: ...
def kernel_names() -> dict[str, str]: ...
def hardware_threads() -> int: ...
def read_safetensors_metadata(path: str) -> dict[str, str]:
    """The string metadata ('__metadata__') of a .safetensors file, after checking its header.

    Raises RuntimeError naming the file for a missing, truncated or malformed file.
    """

class PRMNative:
    """The PRM (mobpose.models.prm) in C++, from a .safetensors file (use mobpose.runtime.NativePRM).

    Weights are read by their PyTorch state_dict names under `prefix` ('' for a weights file, 'model.'
    for a training checkpoint) and every shape is checked against the config; a missing, misshapen or
    unexpected tensor, a non-float tensor or an unreadable file raises RuntimeError naming the file and
    the tensor; a bad config value raises ValueError. The kernel variant is fixed at construction.
    Calls are serialised per object and release the GIL; they never allocate but for their output.
    """

    def __init__(
        self,
        path: str,
        num_joints: int,
        num_frames: int,
        dim: int,
        heads: int,
        blocks: str,
        mlp_ratio: float,
        prior: str,
        lam: float,
        learn_adj: bool,
        causal: bool,
        input_scale: float,
        prefix: str = "",
        num_threads: int = 1,
    ) -> None: ...
    def forward(self, window: npt.ArrayLike) -> np.ndarray:
        """(T, J, 3) float32 mm -> refined (T, J, 3) (PRM.forward on a batch of one); (B, T, J, 3) too.

        Does not touch the stream. ValueError for a wrong shape or a NaN/Inf (naming `window`).
        """
    def step(self, pose: npt.ArrayLike) -> np.ndarray:
        """Streaming: the newest frame's (J, 3) float32 mm pose -> its refined (J, 3) pose.

        Equals forward() at the last position of the window of the last T poses (the first pose
        repeated at the front until T have arrived). RuntimeError for a centred model; ValueError for a
        wrong shape or a NaN/Inf (naming `pose`; the stream is then unchanged).
        """
    def reset(self) -> None:
        """Starts a new stream."""
    @property
    def num_frames(self) -> int: ...
    @property
    def num_joints(self) -> int: ...
    @property
    def causal(self) -> bool: ...
    @property
    def frames_seen(self) -> int:
        """Poses fed to step() since the last reset()."""
    @property
    def kernel(self) -> str:
        """Name of the linear kernel in use."""
