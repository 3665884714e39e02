"""Training commands: the shared base (`train-base`), a new concept (`finetune`), the pix2pix
baseline (`train-pix2pix`) and the search for LoRA ranks per crucial layer (`rank-search`)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from e2gan.checks import check_model_folder, check_ranks
from e2gan.cli.common import command, progress, training_progress
from e2gan.errors import E2GANError
from e2gan.precision import PRECISIONS
from e2gan.training.schedules import SCHEDULES
from e2gan.training.settings import (CONCEPT_STARTS, FULL_LEARNING_RATE, LORA_EMA_DECAY,
                                     LORA_LEARNING_RATE, REPORT_TO, TrainingSettings)


def _settings(args: argparse.Namespace, default_lr: float | None = None,
              default_ema_decay: float = 0.0) -> TrainingSettings:
    """The flags as `TrainingSettings`, whose checks (sizes, steps, finite rates) run here,
    before anything imports torch."""
    lr = args.lr if args.lr is not None else (default_lr or FULL_LEARNING_RATE)
    ema_decay = args.ema_decay if args.ema_decay is not None else default_ema_decay
    return TrainingSettings(size=args.size, steps=args.steps, batch_size=args.batch_size,
                            learning_rate=lr, discriminator_learning_rate=args.d_lr,
                            seed=args.seed, device=args.device,
                            max_seconds=args.max_minutes * 60 if args.max_minutes is not None else None,
                            schedule=args.schedule, warmup_steps=args.warmup_steps,
                            ema_decay=ema_decay, max_grad_norm=args.max_grad_norm,
                            report_to=args.report_to, checkpoint_every=args.checkpoint_every,
                            augment=not args.no_augment, precision=args.precision,
                            l1_weight=args.l1_weight,
                            feature_matching_weight=args.feature_matching,
                            concept_start=getattr(args, "concept_start", "closest"),
                            grain=not getattr(args, "no_grain", False))


def _generator_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """--generator-config JSON: settings of the generator's config dataclass."""
    config: dict[str, Any] = {}
    if args.generator_config:
        try:
            config = json.loads(args.generator_config)
        except ValueError as error:
            raise E2GANError(f"--generator-config is not valid JSON: {error}") from None
        if not isinstance(config, dict):
            raise E2GANError("--generator-config must be a JSON object of generator settings")
    return config or None


def _report(outcome) -> dict[str, Any] | None:
    """The command's JSON result; None on a non-main process (the main one reports)."""
    if not outcome.is_main_process:
        return None
    return {"out": str(outcome.output), **outcome.summary}


@command("train-base")
def cmd_train_base(args: argparse.Namespace) -> dict[str, Any]:
    settings, generator_config = _settings(args), _generator_config(args)

    from e2gan.data.dataset import PairDataset  # numpy and PIL, no torch

    datasets = [PairDataset.open(path) for path in args.dataset]
    if args.init_from:
        check_model_folder(args.init_from)

    from e2gan.training.recipes import train_base

    outcome = train_base(datasets, args.out, settings, generator_config=generator_config,
                         resume=not args.restart, text_encoder=_base_text_encoder(args, datasets),
                         on_event=training_progress(args, "train-base"), init_from=args.init_from,
                         identity=args.identity)
    return _report(outcome)


def _base_text_encoder(args: argparse.Namespace, datasets):
    from e2gan.text import text_encoder_from_option

    # teacher-clip defaults to the pipeline that made the pairs, when they all name the same one.
    models = list(dict.fromkeys(m for dataset in datasets for m in dataset.info.teacher_models()))
    return text_encoder_from_option(args.text_encoder, args.text_model,
                                    default_teacher_model=models[0] if len(models) == 1 else None,
                                    allow_download=args.allow_download)


@command("finetune")
def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    lora = args.mode == "lora"
    settings = _settings(args, LORA_LEARNING_RATE if lora else None, LORA_EMA_DECAY if lora else 0.0)
    if lora and args.rank is not None:  # `--rank 0` is an error, not "no --rank"
        check_ranks({"(--rank, every crucial layer)": args.rank})
    check_model_folder(args.base)

    from e2gan.data.dataset import PairDataset  # numpy and PIL, no torch

    dataset = PairDataset.open(args.dataset)

    from e2gan.training.recipes import finetune

    ranks = _load_ranks(args) if lora else None
    outcome = finetune(args.base, dataset, args.out, settings, mode=args.mode, ranks=ranks,
                       resume=not args.restart, on_event=training_progress(args, "finetune"))
    return _report(outcome)


def _load_ranks(args: argparse.Namespace) -> dict[str, int] | None:
    from e2gan.checkpoint import load_generator, load_rank_table
    from e2gan.training.recipes import uniform_ranks

    if args.rank is not None:  # checked by cmd_finetune
        return uniform_ranks(load_generator(args.base).generator, args.rank)
    return load_rank_table(args.ranks) if args.ranks else None  # None: the base's ranks.json


@command("train-pix2pix")
def cmd_train_pix2pix(args: argparse.Namespace) -> dict[str, Any]:
    settings, generator_config = _settings(args), _generator_config(args)

    from e2gan.data.dataset import PairDataset  # numpy and PIL, no torch

    dataset = PairDataset.open(args.dataset)

    from e2gan.training.recipes import train_pix2pix

    outcome = train_pix2pix(dataset, args.out, settings, resume=not args.restart,
                            generator_config=generator_config,
                            on_event=training_progress(args, "pix2pix"))
    return _report(outcome)


@command("rank-search")
def cmd_rank_search(args: argparse.Namespace) -> dict[str, Any]:
    from e2gan.data.dataset import PairDataset  # numpy and PIL, no torch

    check_model_folder(args.base)
    datasets = [PairDataset.open(path) for path in args.dataset]

    from e2gan.training.rank_search import RankSearchSettings, format_rank_table, search_ranks

    settings = RankSearchSettings(steps_per_round=args.steps_per_round, size=args.size,
                                  batch_size=args.batch_size, learning_rate=args.lr,
                                  seed=args.seed, device=args.device, precision=args.precision,
                                  max_rounds=args.max_rounds,
                                  score=args.score, eval_limit=args.eval_pairs
                                  or (32 if args.score == "mae" else 100))
    result = search_ranks(args.base, datasets, settings, on_progress=progress(args, "rank-search"))
    if not args.json:
        print(format_rank_table(result))
    if args.out:
        from e2gan.files import atomic_write_json
        atomic_write_json(args.out, result)
    return result


def _training_arguments(parser: argparse.ArgumentParser, steps: int, size: int = 128) -> None:
    """The flags every trainer shares: they fill `TrainingSettings` (see `_settings`)."""
    parser.add_argument("--size", type=int, default=size, help="training resolution (pixels)")
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=None,
                        help="Adam learning rate, generator side (default: 3e-3 for LoRA, "
                             "2e-4 otherwise)")
    parser.add_argument("--d-lr", type=float, default=None,
                        help="discriminator learning rate (default: same as --lr)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop cleanly after this much training time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="several GPUs or machines: run under `accelerate launch` or `torchrun`")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                        help="auto: bf16 autocast where the hardware multiplies bf16 (GPUs; CPUs "
                             "with AMX, AVX512-BF16 or ARM BF16), else fp32")
    parser.add_argument("--restart", action="store_true",
                        help="ignore a training checkpoint left by an interrupted run")
    parser.add_argument("--schedule", default="constant", choices=list(SCHEDULES),
                        help="learning rate: constant, linear (pix2pix: flat, then down to 0 over "
                             "the second half) or cosine; after --warmup-steps")
    parser.add_argument("--warmup-steps", type=int, default=0)
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="keep an EMA of the trained weights (used for the saved model); 0: "
                             "off (default: 0.99 for a LoRA fine-tune, off otherwise)")
    parser.add_argument("--max-grad-norm", type=float, default=None, help="clip gradient norms")
    parser.add_argument("--l1-weight", type=float, default=100.0,
                        help="weight of the L1 term against the adversarial one (Eq. 1's lambda)")
    parser.add_argument("--feature-matching", type=float, default=0.0,
                        help="weight of pix2pixHD's feature matching on the discriminator (0: off)")
    parser.add_argument("--report-to", default="none", choices=list(REPORT_TO),
                        help="log losses through Accelerate's trackers (into OUT's logs folder)")
    parser.add_argument("--checkpoint-every", type=int, default=200,
                        help="save the resumable state every N steps (0: only at the end)")
    parser.add_argument("--no-augment", action="store_true", help="no random flips of the pairs")


def add_parsers(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """This area's subcommands and flags; `add` makes a subparser with --json and --quiet."""
    p = add("train-base", "train the shared base generator on several concepts")
    p.add_argument("--dataset", nargs="+", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--text-encoder", default="learned", choices=["learned", "clip", "teacher-clip"],
                   help="learned: a small table per concept (no text model); clip: open_clip's "
                        "text tower; teacher-clip: the diffusion teacher's own CLIP text encoder")
    p.add_argument("--text-model", default=None,
                   help="clip: MODEL or MODEL:PRETRAINED (default ViT-B-32:laion2b_s34b_b79k); "
                        "teacher-clip: pipeline folder or repo id (default: the model that made "
                        "the pairs, else timbrooks/instruct-pix2pix)")
    p.add_argument("--allow-download", action="store_true",
                   help="let the text model download when it is not on this machine")
    p.add_argument("--init-from", default=None,
                   help="start from this generator folder's weights (warm start, not a resume)")
    p.add_argument("--generator-config", default=None,
                   help="JSON object of generator settings (e.g. '{\"num_filters\": 32}')")
    p.add_argument("--identity", action="store_true",
                   help="also learn 'the same photo, unedited' (edit = source), a starting point "
                        "for new concepts' tokens")
    _training_arguments(p, steps=5000)

    p = add("finetune", "teach a base model a new concept (LoRA adapter or full fine-tune)")
    p.add_argument("--base", required=True)
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True, help="adapter file (lora) or model folder (full)")
    p.add_argument("--mode", default="lora", choices=["lora", "full"])
    p.add_argument("--ranks", help="rank table json (default: the base's ranks.json)")
    p.add_argument("--rank", type=int, help="one rank for every crucial layer")
    p.add_argument("--concept-start", default="closest", choices=list(CONCEPT_STARTS),
                   help="a new concept's tokens start at the base's concept whose edits of the "
                        "training pairs are closest to the teacher's, or at the mean of them all")
    p.add_argument("--no-grain", action="store_true",
                   help="do not fit the concept's grain (the fine texture its teacher draws at "
                        "random and the generator averages away) into the adapter")
    _training_arguments(p, steps=600)

    p = add("train-pix2pix", "train the pix2pix baseline from scratch")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--generator-config", default=None,
                   help="JSON object of generator settings (e.g. '{\"num_residual_blocks\": 6}')")
    _training_arguments(p, steps=600)

    p = add("rank-search", "search LoRA ranks per crucial layer (Algorithm 1)")
    p.add_argument("--base", required=True)
    p.add_argument("--dataset", nargs="+", required=True, help="sample concepts' datasets")
    p.add_argument("--steps-per-round", type=int, default=100)
    p.add_argument("--max-rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=3e-3, help="LoRA learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                   help="auto: bf16 where the hardware multiplies it, else fp32")
    p.add_argument("--score", choices=["mae", "fid", "kid"], default="mae",
                   help="what judges a round (lower is better): paired MAE (cheap), or the "
                        "paper's FID / KID, which need ~100 held-out pairs (--eval-pairs)")
    p.add_argument("--eval-pairs", type=int, default=None,
                   help="held-out pairs judged per round (default: 32 for mae, 100 for fid/kid)")
    p.add_argument("--out", help="write the rank table json here (e.g. BASE/ranks.json)")
