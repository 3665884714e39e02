"""Faces: silver_sculpture from the benchmark's face split (600 training faces, 100 clustered;
judged on 100 judging faces, face_1246 on), LoRA for MINUTES at 128 px on each base, back to back.

    python experiments/faces_finetune_check.py OUT MINUTES NAME=BASE_DIR [NAME=BASE_DIR ...]

With STEPS=N each LoRA trains exactly N steps instead (MINUTES is then ignored): a fair
comparison on a machine that is not idle. Needs the benchmark photos in ../shared/data.
"""
import json, os, sys
from pathlib import Path
from e2gan.bench.data import BenchData
from e2gan.bench.settings import BenchSettings
from e2gan.evaluation.heldout import evaluate_pairs
from e2gan.inference.pipeline import EditPipeline
from e2gan.curation.selection import select
from e2gan.training.recipes import TrainingSettings, finetune
out = Path(sys.argv[1]); minutes = float(sys.argv[2]); bases = dict(a.split("=") for a in sys.argv[3:])
data = BenchData(Path("../shared/data"), out, BenchSettings(size=128, source_side=128, max_test_images=100))
dataset = data.dataset("faces", "silver_sculpture")
ids = select(dataset, 100, "cluster", seed=0).ids
prompt = dataset.info.prompt
print(len(dataset.split("train")), len(dataset.split("test")), flush=True)
for name, base in bases.items():
    steps = int(os.environ.get("STEPS", 0))
    s = TrainingSettings(size=128, steps=steps or 1_000_000, batch_size=4, learning_rate=3e-3,
                         max_seconds=None if steps else minutes * 60, checkpoint_every=0)
    o = finetune(base, dataset, out / f"{name}.safetensors", s, ids=ids, resume=False)
    p = EditPipeline.from_pretrained(base, device="cpu"); p.load_adapter(out / f"{name}.safetensors")
    r = evaluate_pairs(lambda ims: p(ims, prompt), dataset, "test", size=128, fid=True)
    print(name, o.result.steps_done, json.dumps({k: round(v, 4) for k, v in r.items() if isinstance(v, float)}), flush=True)
r = evaluate_pairs(lambda ims: list(ims), dataset, "test", size=128, fid=True)
print("no edit", json.dumps({k: round(v, 4) for k, v in r.items() if isinstance(v, float)}), flush=True)
