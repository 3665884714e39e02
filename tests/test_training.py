"""Training: the recipes end to end on tiny data, the loop's resume/stop contract, real learning."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.data import Dataset

from e2gan import lora
from e2gan.checkpoint import apply_adapter, load_generator, read_adapter
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import builtin_photos
from e2gan.data.torch_data import PairTensorDataset
from e2gan.errors import E2GANError
from e2gan.models import build_model
from e2gan.teachers import BuiltinTeacher
from e2gan.text import LearnedConceptEncoder
from e2gan.training.gan import GANHyperparameters, PairedGAN
from e2gan.training.loop import LoopConfig, run_training
from e2gan.training.recipes import (TrainingSettings, finetune, train_base, train_pix2pix,
                                    uniform_ranks)

TINY = {"num_filters": 8, "text_dim": 16, "num_heads": 2}
CONCEPTS = {"sketch": "a pencil sketch", "cartoon": "a cartoon", "bw": "a black and white photo"}



@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Three 12-pair, 32 px datasets made by the offline teacher (10 train / 2 test each)."""
    root = tmp_path_factory.mktemp("pairs")
    teacher = BuiltinTeacher()
    return {name: generate_pairs(teacher, builtin_photos(count=12, size=32), prompt, root / name).dataset
            for name, prompt in CONCEPTS.items()}


def settings(**overrides) -> TrainingSettings:
    values = dict(size=32, steps=6, batch_size=4, device="cpu", checkpoint_every=0, seed=0)
    values.update(overrides)
    return TrainingSettings(**values)


@pytest.fixture(scope="module")
def base_dir(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base"
    outcome = train_base([datasets["sketch"], datasets["cartoon"]], out, settings(),
                         generator_config=TINY)
    assert outcome.result.steps_done == 6
    return out


def finite_losses(losses: dict[str, float]) -> bool:
    return set(losses) == {"d_real", "d_fake", "g_adv", "g_l1"} and all(
        math.isfinite(v) for v in losses.values())


# --- recipes --------------------------------------------------------------------------------


def test_train_base_writes_a_loadable_model_with_its_discriminator(base_dir):
    loaded = load_generator(base_dir, with_discriminator=True)
    assert loaded.info["arch"] == "e2gan" and loaded.info["config"]["num_filters"] == 8
    assert loaded.discriminator is not None and loaded.discriminator.config.text_dim == 16
    assert set(loaded.text_encoder.concepts) == {"a_pencil_sketch", "a_cartoon"}
    summary = loaded.info["training"]
    assert summary["kind"] == "base" and summary["steps"] == 6 and summary["pairs"] == 20
    assert sorted(summary["concepts"]) == sorted(["a pencil sketch", "a cartoon"])
    assert finite_losses(summary["final_losses"])
    with torch.no_grad():
        out = loaded.generator(torch.zeros(1, 3, 32, 32), loaded.text_encoder(["a cartoon"]))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


def test_train_base_changes_the_weights_and_text_tables(datasets, tmp_path):
    out = tmp_path / "base"
    progress = []
    outcome = train_base([datasets["sketch"]], out, settings(steps=10), generator_config=TINY,
                         on_progress=progress.append)
    assert [event["step"] for event in progress] == [10]
    assert finite_losses(outcome.result.last_losses)
    trained = load_generator(out)
    torch.manual_seed(0)  # train_base seeds itself with settings.seed before building
    fresh = build_model("e2gan", TINY)
    changed = [name for name, value in fresh.state_dict().items()
               if not torch.equal(value, trained.generator.state_dict()[name])]
    assert len(changed) > len(fresh.state_dict()) // 2
    assert trained.text_encoder.tables["a_pencil_sketch"].abs().max() > 0


def test_train_base_accepts_two_datasets_of_one_concept(datasets, tmp_path):
    """More data for one concept (e.g. generated plus imported pairs) shares one text table."""
    outcome = train_base([datasets["sketch"], datasets["sketch"]], tmp_path / "base",
                         settings(steps=2), generator_config=TINY)
    assert outcome.result.steps_done == 2
    assert load_generator(tmp_path / "base").text_encoder.concepts == ["a_pencil_sketch"]


def test_train_base_refuses_bad_input(datasets, tmp_path):
    with pytest.raises(E2GANError, match="at least one dataset"):
        train_base([], tmp_path / "x", settings())
    with pytest.raises(E2GANError, match="multiple of 8"):
        train_base([datasets["sketch"]], tmp_path / "x", settings(size=36), generator_config=TINY)


def test_lora_finetune_writes_an_adapter(base_dir, datasets, tmp_path):
    output = tmp_path / "adapters" / "bw.safetensors"
    outcome = finetune(base_dir, datasets["bw"], output, settings(), mode="lora")
    assert outcome.output == output and output.is_file()
    assert not output.with_name(output.name + ".training_state.pt").exists()
    adapter = read_adapter(output)
    base = load_generator(base_dir)
    meta = adapter.metadata
    assert meta["prompt"] == "a black and white photo" and meta["concept"] == "a_black_and_white_photo"
    assert meta["base_sha256"] == base.info["sha256"]
    assert meta["ranks"] == uniform_ranks(base.generator, 4)
    assert meta["training"]["kind"] == "finetune-lora" and meta["training"]["steps"] == 6
    assert finite_losses(meta["training"]["final_losses"])
    assert "concept_embedding" in adapter.tensors
    # Trainable: the LoRA weights plus the new concept's own text table, nothing else.
    lora_count = lora.lora_parameter_count(base.generator, meta["ranks"])
    assert outcome.trainable_parameters == lora_count + 4 * 16
    assert outcome.summary["adapter_bytes"] == output.stat().st_size
    # The adapter is trained (B moved away from 0) and applies to its base.
    assert any(t.abs().max() > 0 for k, t in adapter.lora_tensors.items() if k.endswith("lora_B"))
    apply_adapter(base, adapter)
    assert base.text_encoder.knows("a black and white photo")


def test_lora_finetune_with_custom_ranks_leaves_the_base_untouched(base_dir, datasets, tmp_path):
    before = (base_dir / "model.safetensors").read_bytes()
    ranks = {"upsample.0.conv": 2, "transformer.0.cross_attention.to_k": 1}
    output = tmp_path / "bw.safetensors"
    finetune(base_dir, datasets["bw"], output, settings(steps=2), mode="lora", ranks=ranks)
    assert read_adapter(output).metadata["ranks"] == ranks
    assert (base_dir / "model.safetensors").read_bytes() == before


def test_full_finetune_writes_a_model_folder(base_dir, datasets, tmp_path):
    output = tmp_path / "bw_full"
    outcome = finetune(base_dir, datasets["bw"], output, settings(), mode="full")
    loaded = load_generator(output)
    assert loaded.info["training"]["kind"] == "finetune-full"
    assert loaded.text_encoder.knows("a black and white photo")
    assert loaded.text_encoder.knows("a cartoon")  # the base's concepts come along
    base = load_generator(base_dir)
    assert outcome.trainable_parameters == sum(p.numel() for p in base.generator.parameters()) + 4 * 16
    assert any(not torch.equal(v, loaded.generator.state_dict()[k])
               for k, v in base.generator.state_dict().items())


def test_finetune_refuses_bad_requests(base_dir, datasets, tmp_path):
    with pytest.raises(E2GANError, match="mode"):
        finetune(base_dir, datasets["bw"], tmp_path / "x", settings(), mode="half")
    with pytest.raises(E2GANError, match="multiple"):
        finetune(base_dir, datasets["bw"], tmp_path / "x", settings(size=20))
    with pytest.raises(E2GANError, match="not a model folder"):
        finetune(tmp_path / "nowhere", datasets["bw"], tmp_path / "x", settings())


def test_train_pix2pix(datasets, tmp_path):
    out = tmp_path / "p2p"
    outcome = train_pix2pix(datasets["bw"], out, settings(steps=4),
                            generator_config={"num_filters": 8, "num_residual_blocks": 2})
    assert outcome.result.steps_done == 4 and finite_losses(outcome.result.last_losses)
    loaded = load_generator(out)
    assert loaded.info["arch"] == "pix2pix" and loaded.text_encoder is None
    assert loaded.info["training"]["concept"] == "a black and white photo"
    assert not (out / "training_state.pt").exists()


def test_recipe_resumes_after_a_cooperative_stop(datasets, tmp_path):
    out = tmp_path / "base"
    calls = iter(range(100))
    first = train_base([datasets["sketch"]], out, settings(steps=6, batch_size=2),
                       generator_config=TINY, should_stop=lambda: next(calls) >= 3)
    assert first.result.stopped_early and first.result.steps_done == 3
    assert (out / "training_state.pt").is_file() and (out / "config.json").is_file()
    second = train_base([datasets["sketch"]], out, settings(steps=6, batch_size=2),
                        generator_config=TINY)
    assert second.result.steps_done == 6 and not second.result.stopped_early
    assert second.result.images_seen == 3 * 2  # only the remaining steps ran
    restarted = train_base([datasets["sketch"]], out, settings(steps=2, batch_size=2),
                           generator_config=TINY, resume=False)
    assert restarted.result.steps_done == 2 and restarted.result.images_seen == 4


# --- the loop -------------------------------------------------------------------------------


class Pairs(Dataset):
    """Fixed random pairs; reading an item draws from torch's RNG, as flip augmentation does."""

    def __init__(self, count: int, size: int = 16, augment: bool = True) -> None:
        generator = torch.Generator().manual_seed(123)
        self.sources = torch.rand(count, 3, size, size, generator=generator) * 2 - 1
        self.targets = -self.sources.flip(-2)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        source, target = self.sources[index], self.targets[index]
        if self.augment and bool(torch.rand(()) < 0.5):
            source, target = source.flip(-1), target.flip(-1)
        return {"source": source, "edited": target, "prompt": "a cartoon", "id": f"{index:02d}"}


class Recorder:
    """A trainer that only records what it is fed (and has a resumable state)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, ...]] = []
        self.sums: list[float] = []

    def train_step(self, batch) -> dict[str, float]:
        self.seen.append(tuple(batch["id"]))
        self.sums.append(float(batch["source"].sum()))
        return {"loss": float(len(self.seen))}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state) -> None:
        pass


@pytest.mark.parametrize("count, batch_size, stop_after", [(5, 2, 4), (6, 2, 2), (3, 4, 1)])
def test_resume_replays_exactly_the_uninterrupted_data(tmp_path, count, batch_size, stop_after):
    """Same batches (order and augmentation) as a run that was never stopped, also when the
    last partial batch of an epoch is dropped and when stopping mid-epoch."""
    config = LoopConfig(steps=7, batch_size=batch_size, seed=3, checkpoint_every=0, log_every=1)
    straight = Recorder()
    run_training(straight, Pairs(count), config, modules={})

    path = tmp_path / "state.pt"
    interrupted = Recorder()
    result = run_training(interrupted, Pairs(count), config, modules={}, state_path=path,
                          should_stop=lambda: len(interrupted.seen) >= stop_after)
    assert result.stopped_early and result.steps_done == stop_after and path.is_file()
    resumed = Recorder()
    result = run_training(resumed, Pairs(count), config, modules={}, state_path=path)
    assert result.steps_done == 7 and not result.stopped_early
    assert [event["step"] for event in result.history] == list(range(stop_after + 1, 8))
    assert interrupted.seen + resumed.seen == straight.seen
    assert interrupted.sums + resumed.sums == straight.sums


def tiny_gan(seed: int = 0) -> tuple[PairedGAN, dict]:
    torch.manual_seed(seed)
    generator = build_model("e2gan", TINY)
    discriminator = build_model("patchgan", {"num_filters": 8, "num_layers": 2, "text_dim": 16})
    encoder = LearnedConceptEncoder(embedding_dim=16, concepts=["a cartoon"])
    parameters = list(generator.parameters()) + list(encoder.parameters())
    gan = PairedGAN(generator, discriminator, encoder, parameters, device="cpu")
    return gan, {"generator": generator, "discriminator": discriminator, "text_encoder": encoder}


def test_gan_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    config = LoopConfig(steps=4, batch_size=2, seed=0, checkpoint_every=2, log_every=1)
    gan, modules = tiny_gan()
    straight = run_training(gan, Pairs(5), config, modules)
    assert straight.steps_done == 4 and all(finite_losses(e["losses"]) for e in straight.history)
    expected = {name: {k: v.clone() for k, v in m.state_dict().items()} for name, m in modules.items()}

    path = tmp_path / "training_state.pt"
    gan, modules = tiny_gan()
    steps = []
    first = run_training(gan, Pairs(5), config, modules, state_path=path,
                         on_progress=lambda e: steps.append(e["step"]),
                         should_stop=lambda: len(steps) >= 2)
    assert first.stopped_early and first.steps_done == 2
    assert torch.load(path, weights_only=True)["step"] == 2

    gan, modules = tiny_gan(seed=99)  # a fresh process: other random weights until loaded
    second = run_training(gan, Pairs(5), config, modules, state_path=path)
    assert second.steps_done == 4 and second.images_seen == 4
    assert [e["step"] for e in second.history] == [3, 4]
    assert torch.load(path, weights_only=True)["step"] == 4
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(value, expected[name][key], atol=1e-6, rtol=0,
                                       msg=f"{name}.{key}")


def test_max_seconds_zero_stops_before_training_but_returns(tmp_path):
    gan, modules = tiny_gan()
    before = {k: v.clone() for k, v in modules["generator"].state_dict().items()}
    path = tmp_path / "state.pt"
    result = run_training(gan, Pairs(4), LoopConfig(steps=5, batch_size=2, max_seconds=0),
                          modules, state_path=path)
    assert result.stopped_early and result.steps_done == 0 and result.images_seen == 0
    assert result.last_losses == {} and not path.exists()
    assert all(torch.equal(v, before[k]) for k, v in modules["generator"].state_dict().items())


def test_recipe_with_zero_seconds_still_writes_the_model(datasets, tmp_path):
    outcome = train_pix2pix(datasets["bw"], tmp_path / "p2p", settings(max_seconds=0),
                            generator_config={"num_filters": 8, "num_residual_blocks": 1})
    assert outcome.result.steps_done == 0 and outcome.summary["stopped_early"]
    assert load_generator(tmp_path / "p2p").info["arch"] == "pix2pix"


@pytest.mark.parametrize("mode, learning_rate, ratio", [("lora", 1e-2, 0.9), ("full", 2e-3, 0.75)])
def test_finetune_lowers_the_l1_loss(datasets, mode, learning_rate, ratio):
    """A real learning check: 30 steps on one concept bring the edit closer to the teacher's."""
    torch.manual_seed(0)
    generator = build_model("e2gan", TINY)
    encoder = LearnedConceptEncoder(embedding_dim=16, concepts=["a black and white photo"])
    if mode == "lora":
        generator.requires_grad_(False)
        lora.add_adapter(generator, "bw", {name: 4 for name in lora.crucial_layers(generator)})
        parameters = [p for n, p in generator.named_parameters() if "lora_" in n]
    else:
        parameters = list(generator.parameters())
    hyperparameters = GANHyperparameters(learning_rate=learning_rate, l1_weight=100.0)
    gan = PairedGAN(generator, build_model("patchgan", {"num_filters": 8, "text_dim": 16}), encoder,
                    parameters, hyperparameters, "cpu")
    data = PairTensorDataset(datasets["bw"], "train", 32, augment=False)
    result = run_training(gan, data, LoopConfig(steps=30, batch_size=4, log_every=1), modules={})
    l1 = [event["losses"]["g_l1"] for event in result.history]
    assert len(l1) == 30 and all(math.isfinite(v) for v in l1)
    first, last = sum(l1[:5]) / 5, sum(l1[-5:]) / 5
    assert last < ratio * first, (first, last)


def test_generator_step_does_not_move_the_text_through_the_discriminator():
    """G may learn the concept's tokens through its own cross-attention, but must not 'fool' D by
    changing the condition D is given (the concept tokens are D's input, not G's output)."""
    gan, modules = tiny_gan()
    batch = Pairs(2, augment=False)
    source, target = batch.sources, batch.targets
    table = modules["text_encoder"].tables["a_cartoon"]
    before = table.detach().clone()
    text = gan.encode_text(["a cartoon", "a cartoon"])
    fake = target.clone().requires_grad_(True)  # an 'edit' that does not depend on the text
    gan.generator_step(source, target, fake, text)
    assert table.grad is None or not table.grad.any()
    assert torch.equal(table.detach(), before)
    # Through G's own use of the text, the tokens do learn.
    losses = gan.train_step({"source": source, "edited": target, "prompt": ["a cartoon"] * 2})
    assert finite_losses(losses) and not torch.equal(table.detach(), before)


def test_a_checkpoint_from_another_run_is_a_clear_error(datasets, tmp_path):
    out = tmp_path / "base"
    calls = iter(range(100))
    train_base([datasets["sketch"]], out, settings(steps=4, batch_size=2), generator_config=TINY,
               should_stop=lambda: next(calls) >= 1)
    assert (out / "training_state.pt").is_file()
    with pytest.raises(E2GANError, match="restart"):  # a second concept: other text tables
        train_base([datasets["sketch"], datasets["cartoon"]], out, settings(steps=4, batch_size=2),
                   generator_config=TINY)
    (out / "training_state.pt").write_bytes(b"garbage")
    with pytest.raises(E2GANError, match="training_state.pt"):
        train_base([datasets["sketch"]], out, settings(steps=4, batch_size=2), generator_config=TINY)
    outcome = train_base([datasets["sketch"], datasets["cartoon"]], out,
                         settings(steps=2, batch_size=2), generator_config=TINY, resume=False)
    assert outcome.result.steps_done == 2


@pytest.mark.parametrize("field,value", [("steps", 0), ("batch_size", 0), ("size", -8),
                                         ("learning_rate", 0.0), ("max_seconds", -1.0)])
def test_training_settings_refuse_nonsense_with_a_clear_error(field, value):
    from e2gan.errors import E2GANError
    from e2gan.training.recipes import TrainingSettings

    with pytest.raises(E2GANError, match="must"):
        TrainingSettings(**{field: value})


def test_finetune_uses_the_rank_table_shipped_with_its_base(tiny_base, tiny_pairs, tmp_path):
    import json
    import shutil

    from e2gan.checkpoint import read_adapter
    from e2gan.training.recipes import TrainingSettings, finetune

    base = tmp_path / "base"
    shutil.copytree(tiny_base, base)
    layers = lora.crucial_layers(load_generator(base).generator)
    table = {layer: (2 if index % 2 else 1) for index, layer in enumerate(layers)}
    (base / "ranks.json").write_text(json.dumps({"ranks": table}))
    settings = TrainingSettings(size=32, steps=1, batch_size=4, device="cpu", checkpoint_every=0)
    outcome = finetune(base, tiny_pairs["winter"], tmp_path / "w.safetensors", settings)
    assert read_adapter(outcome.output).metadata["ranks"] == table
