"""Resource limits, in one place: what one input may cost before it is refused.

Each limit has a default sized for the studio on a shared machine and an environment variable
that overrides it (read at each check, so a running process picks up a test's or a server's
setting). A limit that is hit is an `E2GANError` naming the value, the limit and its variable.

    E2GAN_MAX_IMAGE_PIXELS          40_000_000   decoded pixels of one image (checked from the
                                                 header, before any pixel is decoded)
    E2GAN_MAX_ARCHIVE_MEMBER_BYTES  134_217_728  uncompressed bytes of one file read from a zip
                                                 (streamed, stopped at the limit)
    E2GAN_MAX_ARCHIVE_FILES         10_000       entries in one zip archive (read from its
                                                 directory, before any member is unpacked), and
                                                 files in one studio upload
    E2GAN_MAX_UPLOAD_BYTES          268_435_456  bytes of one uploaded file (the studio's web
                                                 server stops the upload at the limit)
    E2GAN_MAX_LORA_RANK             128          rank of any one LoRA layer
    E2GAN_MAX_TRAINING_STEPS        1_000_000    optimiser steps of one training run
    E2GAN_MAX_TRAINING_SIZE         1024         training resolution (pixels per side)
    E2GAN_MAX_STUDIO_TRAINING_MINUTES  60        minutes of one studio fine-tune
    E2GAN_MAX_STUDIO_QUEUE          64           requests waiting in the studio's queue
    E2GAN_MAX_GPU_CALL_SECONDS      120          seconds of GPU one studio call books on a
                                                 ZeroGPU Space (a longer job stops and resumes)
    E2GAN_WORKSPACE_IDLE_HOURS      72           hours a studio workspace is kept unused

The studio's own bounds on its workspaces (their disk, and how many one visitor keeps) are in
`app.settings`; its clean-up never removes a workspace whose job is running.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from e2gan.errors import E2GANError


@dataclass(frozen=True)
class Limit:
    variable: str  # the environment variable that overrides the default
    default: int
    what: str  # what is counted, for messages: "pixels per image"
    unit: str = ""  # how messages show an amount: "MP" with per_unit 1_000_000
    per_unit: int = 1

    def value(self) -> int:
        text = os.environ.get(self.variable, "").strip().replace("_", "")
        if not text:
            return self.default
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise E2GANError(f"{self.variable} must be a positive whole number ({self.what}), "
                             f"got {os.environ[self.variable]!r}")
        return value

    def show(self, amount: int) -> str:
        """An amount in this limit's unit: "900 MP", "1,234", "0.25 MP"."""
        value = amount / self.per_unit
        return (f"{value:,.0f} {self.unit}" if value >= 100 else f"{value:.3g} {self.unit}").strip()

    def check(self, amount: int, subject: str) -> None:
        """Refuse `amount` over the limit. `subject` says what and how much, and leads the
        message: "photo a.png is 30000x30000 (900 MP)"."""
        limit = self.value()
        if amount > limit:
            raise E2GANError(f"{subject}; the limit is {self.show(limit)} {self.what} "
                             f"(set {self.variable} to raise it)")


# 40 MP holds every camera photo up to a 7000x5700 frame; decoded it is 120 MB of RGB, and a
# studio session may hold a few. A 10000x10000 PNG of 290 KB drove the studio to 16.5 GB.
MAX_IMAGE_PIXELS = Limit("E2GAN_MAX_IMAGE_PIXELS", 40_000_000, "per image", "MP", 1_000_000)

# A 40 MP photo is under 128 MiB in any of the formats read (PNG of noise included); a 1 MB zip
# holding a 1 GiB member reached 2.68 GB of memory before this limit existed.
MAX_ARCHIVE_MEMBER_BYTES = Limit("E2GAN_MAX_ARCHIVE_MEMBER_BYTES", 128 * 1024 * 1024,
                                 "per file in an archive", "MiB", 1024 * 1024)

# A photo folder zipped is a few thousand files at most; the entry count is read from the zip's
# directory, so a zip of millions of empty entries is refused before it is listed or unpacked.
MAX_ARCHIVE_FILES = Limit("E2GAN_MAX_ARCHIVE_FILES", 10_000, "files per archive or upload")

# 256 MiB holds a zip of a few hundred camera photos; Gradio's server stops a larger upload as it
# streams (`launch(max_file_size=...)`), before it reaches a handler or the disk fills.
MAX_UPLOAD_BYTES = Limit("E2GAN_MAX_UPLOAD_BYTES", 256 * 1024 * 1024, "per uploaded file", "MiB",
                         1024 * 1024)

# The searched rank tables stop at 16 (`lora.rank_cap`); 128 leaves room to experiment while a
# typo cannot allocate gigabytes (`finetune --rank 100000` grew to 19.7 GB and was OOM-killed).
MAX_LORA_RANK = Limit("E2GAN_MAX_LORA_RANK", 128, "for a LoRA layer")

# One studio fine-tune holds the shared queue for its whole budget; `/finetune` once accepted
# minutes = 1e9. An hour is twelve times the default; "continue" extends a run past it.
MAX_STUDIO_TRAINING_MINUTES = Limit("E2GAN_MAX_STUDIO_TRAINING_MINUTES", 60, "per studio fine-tune",
                                    "minutes")

# A million steps is days on a GPU at 256 px (the shipped base took 9,000); more is a typo.
MAX_TRAINING_STEPS = Limit("E2GAN_MAX_TRAINING_STEPS", 1_000_000, "training steps per run")

# Activations grow with the square of the side: at 1024 px batch 4 one step of the generator and
# discriminator needs about 10 GB; a typo like --size 100000 would ask for terabytes.
MAX_TRAINING_SIZE = Limit("E2GAN_MAX_TRAINING_SIZE", 1024, "pixels per side for training")

# Requests past this wait nowhere: Gradio answers "queue full" at once instead of letting a
# flood of clients hold memory and sockets. 64 is 8 busy sessions with a few clicks each.
MAX_STUDIO_QUEUE = Limit("E2GAN_MAX_STUDIO_QUEUE", 64, "requests waiting in the studio's queue")

# A ZeroGPU booking counts against the visitor's daily quota (2 minutes unsigned in, a few more
# signed in, in 2026) and one over the visitor's per-call cap is refused outright, so a studio job
# books at most this and stops itself before it runs out; starting it again resumes. On a GPU a
# 2-minute fine-tune is many CPU-minutes of training. A host whose visitors have more raises it.
MAX_GPU_CALL_SECONDS = Limit("E2GAN_MAX_GPU_CALL_SECONDS", 120, "per ZeroGPU call", "s")

# Every new browser session makes a workspace; without a clean-up a public studio fills its disk
# (85 workspaces, 820 MB after one probe). None is kept idle more than 3 days.
WORKSPACE_IDLE_HOURS = Limit("E2GAN_WORKSPACE_IDLE_HOURS", 72, "hours a workspace is kept unused",
                             "hours")
