"""What the machine the studio runs on changes: device, default sizes and budgets, Spaces limits.

Read once from the environment at import:
- `SPACE_ID` (set by Hugging Face Spaces): hosted, shared by strangers, so local paths are off
  and per-job sizes are capped.
- `ZERO_GPU` / `SPACES_ZERO_GPU`: a ZeroGPU Space lends a GPU only inside `spaces.GPU` calls
  (`app.gpu`: preview and pair making with a diffusion teacher, fine-tuning, Compare). The
  studio's own process stays on the CPU there, with CPU defaults, even though `spaces` makes
  `torch.cuda.is_available()` say True; work inside a call uses `app.gpu.device()`.
- `E2GAN_STUDIO_CONCURRENCY`: how many heavy jobs share the device at once (default 1).
- `E2GAN_MAX_EDIT_SIDE`: Compare and the studio's edits run at the photo's own size up to this
  long side (default 1024 px on a GPU, 768 on a CPU, where one 768x512 edit takes about 1 s).
- `E2GAN_LOCAL_PATHS`: folders (separated by `os.pathsep`) that the "local path" source may read
  from. Unset: any folder on a private machine, none on a Space. Set: only inside these, also on
  a Space (a shared host that mounts a photo folder for its users).

Read at each clean-up instead (so a test's or a server's setting applies at once), the bounds on
the studio's workspaces (`app.workspace.prune_workspaces`), none a count of everyone's sessions
that strangers could exhaust:
- `E2GAN_WORKSPACE_DISK_MB`: the disk all workspaces may fill together (default 10,240 MB).
- `E2GAN_WORKSPACES_PER_VISITOR`: workspaces one visitor keeps (default 20): the signed-in user on
  a Space, else the client's address.
- `E2GAN_WORKSPACE_IDLE_HOURS` (`e2gan.limits`): the age limit, in hours unused (default 72).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from app.gpu import on_zero_gpu  # first: on ZeroGPU it imports `spaces` before torch

import torch  # noqa: E402

from e2gan.limits import Limit  # noqa: E402
from e2gan.training.recipes import LORA_LEARNING_RATE  # noqa: E402

# A probe of the public studio left 85 workspaces in 820 MB: 10 GiB holds about a thousand such,
# and a fifth of a free Space's disk. Past it, the least recently used workspaces go, empty ones
# first and ones with a finished adapter last (their owners' pages say so).
WORKSPACE_DISK_MB = Limit("E2GAN_WORKSPACE_DISK_MB", 10_240, "of workspaces on disk", "MB")
# Every page load and API session makes a workspace; a visitor past this loses their own least
# recently used ones without an adapter, never anyone else's. 20 is a day of tabs and scripts.
WORKSPACES_PER_VISITOR = Limit("E2GAN_WORKSPACES_PER_VISITOR", 20, "workspaces per visitor")
# A video through Compare's adapter runs a few frames a second on a CPU at 256 px: a minute of
# 30 fps video is 1,800 frames, about ten minutes here. Longer videos: `e2gan edit-video`.
MAX_VIDEO_FRAMES = Limit("E2GAN_MAX_VIDEO_FRAMES", 1_800, "frames per video edit in the studio")


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class StudioSettings:
    device: str
    on_space: bool
    zero_gpu: bool
    heavy_concurrency: int
    local_path_roots: tuple[str, ...]  # E2GAN_LOCAL_PATHS; empty: see the module's note
    max_edit_side: int  # E2GAN_MAX_EDIT_SIDE
    # Defaults per device. On a 2-core CPU the default fine-tune gives a visibly working concept
    # in at most 10 minutes (measured on 'winter', a concept the shipped base never saw; see the
    # report in docs/studio/).
    train_size: int
    train_minutes: float
    num_pairs: int
    subset_size: int
    learning_rate: float = LORA_LEARNING_RATE
    batch_size: int = 4
    max_pairs: int = 2000

    @property
    def local_paths_allowed(self) -> bool:
        return bool(self.local_path_roots) or not self.on_space

    @property
    def device_label(self) -> str:
        if self.device == "cuda":
            return f"GPU ({torch.cuda.get_device_name(0)})"
        return f"CPU ({os.cpu_count()} cores)"


def detect() -> StudioSettings:
    on_space = bool(os.environ.get("SPACE_ID"))
    zero_gpu = _flag("ZERO_GPU") or _flag("SPACES_ZERO_GPU") or on_zero_gpu()
    gpu = torch.cuda.is_available() and not zero_gpu
    concurrency = max(1, int(os.environ.get("E2GAN_STUDIO_CONCURRENCY", "1")))
    edit_side = os.environ.get("E2GAN_MAX_EDIT_SIDE", "").strip()
    roots = tuple(root for root in os.environ.get("E2GAN_LOCAL_PATHS", "").split(os.pathsep) if root.strip())
    if gpu:
        return StudioSettings("cuda", on_space, zero_gpu, concurrency, roots,
                              max_edit_side=int(edit_side or 1024), train_size=256,
                              train_minutes=5.0, num_pairs=300, subset_size=100,
                              max_pairs=500 if on_space else 5000)
    return StudioSettings("cpu", on_space, zero_gpu, concurrency, roots,
                          max_edit_side=int(edit_side or 768), train_size=128,
                          train_minutes=5.0, num_pairs=150, subset_size=100,
                          max_pairs=500 if on_space else 2000)


SETTINGS = detect()
