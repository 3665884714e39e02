"""Copy a model folder with its weights stored in float16 (half the bytes; models load them as
float32, and the shipped base's edits stay within 5e-4 of the float32 weights).

    .venv/bin/python tools/store_half.py SOURCE_FOLDER TARGET_FOLDER

Copies config.json, discriminator.json and ranks.json as they are; every floating tensor of
model.safetensors and discriminator.safetensors is cast, their metadata kept. The training
state (optimiser moments) is not copied: a next stage starts with `--init-from`.
"""
import shutil
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

source, target = Path(sys.argv[1]), Path(sys.argv[2])
target.mkdir(parents=True, exist_ok=True)
for name in ("config.json", "discriminator.json", "ranks.json"):
    if (source / name).is_file():
        shutil.copyfile(source / name, target / name)
for name in ("model.safetensors", "discriminator.safetensors"):
    with safe_open(str(source / name), framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    half = {key: value.to(torch.float16) if value.is_floating_point() else value
            for key, value in tensors.items()}
    save_file(half, str(target / name), metadata=metadata)
    print(name, sum(v.numel() for v in half.values()), "values,",
          round((target / name).stat().st_size / 2**20, 1), "MB")
