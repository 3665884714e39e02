"""`e2gan bench`: the paper's tables in miniature, on real photos, with numbers anyone can rerun
(and `demo`, `e2gan demo`: one unseen concept distilled two ways, judged side by side).

One module per section (`section_main`, `section_ranks`, `section_layers`, `section_base`,
`section_data`, `section_inference`), over shared pieces: `settings` (presets and budgets), `data`
(real photos edited by the built-in teacher), `runs` (one budgeted training run, judged),
`judge` (paired metrics + FID/KID), `store` (resumable results), `report` and `plots`.
"""

from e2gan.bench.runner import run_bench
from e2gan.bench.settings import SECTIONS, BenchSettings, quick_settings

__all__ = ["run_bench", "BenchSettings", "quick_settings", "SECTIONS"]
