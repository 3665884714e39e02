"""Where do a generator's conv outputs carry spikes? One value far above the rest of its channel
lets a generator set that channel's scale after a per-image normalisation (InstanceNorm follows
each of these convs in the paper's layout), the mechanism StyleGAN2 traced its "droplet" artefacts
to. Prints, per conv of the encoder, residual blocks and decoder (not the transformer's or the
head's), the share of channels whose largest |value - mean| / std exceeds 8, how many of those
peaks lie on the feature map's border (where zero padding gives them a place: the corner
artefact), the mean peak, and which norm follows the conv (InstanceNorm, PixelNorm or none).

    python experiments/norm_spikes.py PROMPT BASE_DIR [BASE_DIR ...]

Input: 16 validation faces (face_0601 on, never judged by the benchmark) at 128 px, from the
recipe trials' data (`experiments/lora_recipe_trials.py` makes it).
"""
import sys

import torch

from e2gan.data.dataset import PairDataset
from e2gan.evaluation.heldout import resize_and_center_crop
from e2gan.models.blocks import PixelNorm
from e2gan.paths import REPOSITORY
from e2gan.inference.pipeline import EditPipeline

SPIKE_SIGMAS = 8.0
FACES = REPOSITORY / "runs" / "recipes" / "data_256_None_None" / "faces_600" / "marble_statue"


def spike_statistics(inputs: torch.Tensor) -> tuple[float, float, float]:
    """(share of channels with a spike, share of those on the border, mean peak in sigmas)."""
    height, width = inputs.shape[2:]
    centred = inputs - inputs.mean((2, 3), keepdim=True)
    sigmas = centred.abs() / (inputs.std((2, 3), keepdim=True) + 1e-5)
    peak, where = sigmas.flatten(2).max(-1)
    row, column = where // width, where % width
    on_border = (row == 0) | (column == 0) | (row == height - 1) | (column == width - 1)
    spiked = peak > SPIKE_SIGMAS
    border_share = (spiked & on_border).sum() / spiked.sum().clamp(min=1)
    return spiked.float().mean().item(), border_share.item(), peak.mean().item()


def main(prompt: str, bases: list[str]) -> None:
    dataset = PairDataset.open(FACES)
    sources = [resize_and_center_crop(dataset.load_pair(row)[0], 128)
               for row in dataset.split("test")[:16]]
    for base in bases:
        pipeline = EditPipeline.from_pretrained(base, device="cpu")
        generator = pipeline.generator
        modules = dict(generator.named_modules())
        found = {}
        hooks = [module.register_forward_hook(
                     lambda module, args, output, name=name: found.__setitem__(
                         name, (output.shape[-1], *spike_statistics(output.detach()))))
                 for name, module in modules.items()
                 if isinstance(module, torch.nn.Conv2d)
                 and not name.startswith(("transformer", "head"))]
        pipeline(sources, prompt)
        for hook in hooks:
            hook.remove()
        print(base)
        for name, (size, spiked, border, peak) in found.items():
            # The conv's norm is its sibling: `x.conv` -> `x.norm`, `b.conv1` -> `b.norm1`.
            parent, _, child = name.rpartition(".")
            norm = modules.get(f"{parent}.{child.replace('conv', 'norm')}")
            normalised = (type(norm).__name__
                          if isinstance(norm, (torch.nn.InstanceNorm2d, PixelNorm)) else "no norm")
            print(f"  {name:24s} {size:4d} px  {normalised:14s}  channels with a spike {spiked:6.1%}"
                  f"  on the border {border:6.1%}  mean peak {peak:5.1f} sigma")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
