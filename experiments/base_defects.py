"""Two defects a base shows on its own, without an adapter: colour speckle and a corner artefact.

    python experiments/base_defects.py BASE_DIR [BASE_DIR ...]

On 32 validation faces (face_0601 on, never judged by the benchmark; the recipe trials' data,
made by `experiments/lora_recipe_trials.py`) at 128 px, for three of the base's own concepts:
- chroma HF: mean |Laplacian| of the chroma (each pixel's RGB minus its grey), in grey levels;
  the source photos score 1.33, so anything far above is colour speckle the base adds;
- corner: mean |output - source| at pixel (0, 0), beside the mean over all pixels; a corner far
  off the mean is the artefact zero padding leaves at the top-left border.
"""
import sys

import numpy as np

from e2gan.data.dataset import PairDataset
from e2gan.evaluation.heldout import resize_and_center_crop
from e2gan.paths import REPOSITORY
from e2gan.inference.pipeline import EditPipeline

FACES = REPOSITORY / "runs" / "recipes" / "data_256_None_None" / "faces_600" / "marble_statue"
PROMPTS = ["a black and white photo", "an oil painting", "a bronze statue"]


def chroma_high_frequency(images: np.ndarray) -> float:
    """images: (N, H, W, 3) float grey levels."""
    chroma = images - images.mean(-1, keepdims=True)
    laplacian = (4 * chroma[:, 1:-1, 1:-1] - chroma[:, :-2, 1:-1] - chroma[:, 2:, 1:-1]
                 - chroma[:, 1:-1, :-2] - chroma[:, 1:-1, 2:])
    return float(np.abs(laplacian).mean())


def main(bases: list[str]) -> None:
    dataset = PairDataset.open(FACES)
    sources = [resize_and_center_crop(dataset.load_pair(row)[0], 128)
               for row in dataset.split("test")[:32]]
    source_array = np.stack([np.asarray(s.convert("RGB"), np.float32) for s in sources])
    print(f"source photos: chroma HF {chroma_high_frequency(source_array):.2f}")
    for base in bases:
        pipeline = EditPipeline.from_pretrained(base, device="cpu")
        for prompt in PROMPTS:
            edits = np.stack([np.asarray(e.convert("RGB"), np.float32)
                              for e in pipeline(sources, prompt)])
            error = np.abs(edits - source_array).mean(axis=(0, 3))
            print(f"{base:36s} {prompt:24s} chroma HF {chroma_high_frequency(edits):5.2f}"
                  f"  corner {error[0, 0]:3.0f}  mean {error.mean():4.1f}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
