"""Where a new concept's tokens start, and the identity concept a base can learn as an anchor."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from e2gan.checkpoint import load_generator, read_adapter
from e2gan.data.generate import generate_pairs
from e2gan.data.sources import builtin_photos
from e2gan.data.torch_data import IDENTITY_PROMPT, IdentityPairs, PairTensorDataset
from e2gan.errors import E2GANError
from e2gan.models import build_model
from e2gan.teachers import BuiltinTeacher
from e2gan.text import LearnedConceptEncoder, concept_key
from e2gan.training.concept_start import MEAN, closest_concept_start
from e2gan.training.recipes import TrainingSettings, finetune, train_base

TINY = {"num_filters": 8, "text_dim": 16, "num_heads": 2}


def settings(**overrides) -> TrainingSettings:
    values = dict(size=32, steps=4, batch_size=4, device="cpu", checkpoint_every=0, seed=0)
    values.update(overrides)
    return TrainingSettings(**values)


class Pairs(Dataset):
    def __init__(self, sources: torch.Tensor, edits: torch.Tensor) -> None:
        self.sources, self.edits = sources, edits

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict:
        return {"source": self.sources[index], "edited": self.edits[index], "prompt": "p", "id": str(index)}


def test_the_closest_known_concept_is_the_one_whose_edits_match_the_teacher():
    torch.manual_seed(0)
    generator = build_model("e2gan", TINY).eval()
    encoder = LearnedConceptEncoder(16, concepts=["red", "green", "blue"])
    for table in encoder.tables.values():
        table.data.normal_(0, 3.0)  # far apart, so their edits differ clearly
    sources = torch.rand(6, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        edits = generator(sources, encoder(["green"] * 6))
    start = closest_concept_start(generator, encoder, Pairs(sources, edits), count=4)
    assert start.source == "green"
    assert start.l1_by_candidate["green"] < 1e-6 < min(v for k, v in start.l1_by_candidate.items() if k != "green")
    assert set(start.l1_by_candidate) == {"red", "green", "blue", MEAN}
    assert torch.equal(start.table, encoder.tables["green"].detach())


def test_scoring_restores_training_mode():
    generator = build_model("e2gan", TINY).train()
    encoder = LearnedConceptEncoder(16, concepts=["a"])
    sources = torch.zeros(2, 3, 32, 32)
    closest_concept_start(generator, encoder, Pairs(sources, sources))
    assert generator.training


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pairs")
    teacher = BuiltinTeacher()
    return {name: generate_pairs(teacher, builtin_photos(count=10, size=32), name, root / name).dataset
            for name in ("a pencil sketch", "a cartoon", "a black and white photo")}


@pytest.fixture(scope="module")
def identity_base(pairs, tmp_path_factory):
    out = tmp_path_factory.mktemp("base") / "base"
    train_base([pairs["a pencil sketch"], pairs["a cartoon"]], out, settings(), generator_config=TINY,
               identity=True)
    return out


def test_a_base_trained_with_identity_knows_the_same_photo_as_a_concept(identity_base, pairs):
    loaded = load_generator(identity_base)
    assert loaded.text_encoder.knows(IDENTITY_PROMPT)
    summary = loaded.info["training"]
    per_concept = len(PairTensorDataset(pairs["a cartoon"], "train", 32, augment=False))
    assert summary["pairs"] == 3 * per_concept  # identity has an average concept's share
    assert IDENTITY_PROMPT in summary["concepts"]


def test_identity_pairs_are_their_own_edit_drawn_across_all_sources(pairs):
    both = torch.utils.data.ConcatDataset([PairTensorDataset(pairs[p], "train", 32, augment=False)
                                           for p in ("a pencil sketch", "a cartoon")])
    identity = IdentityPairs(both, 4)
    items = [identity[i] for i in range(len(identity))]
    assert all(torch.equal(item["source"], item["edited"]) for item in items)
    assert {item["prompt"] for item in items} == {IDENTITY_PROMPT}
    # evenly spread: the last item comes from the second dataset's sources
    assert torch.equal(items[-1]["source"], both[3 * len(both) // 4]["source"])
    with pytest.raises(IndexError):
        identity[4]
    with pytest.raises(E2GANError, match="identity pairs"):
        IdentityPairs(both, len(both) + 1)


@pytest.mark.parametrize("start", ["closest", "mean"])
def test_a_finetune_starts_its_tokens_where_it_says_and_records_it(identity_base, pairs, tmp_path, start):
    output = tmp_path / "bw.safetensors"
    # No training steps: the adapter holds exactly the starting tokens.
    finetune(identity_base, pairs["a black and white photo"], output,
             settings(max_seconds=0, learning_rate=3e-3, concept_start=start))
    adapter = read_adapter(output)
    training = adapter.metadata["training"]
    base = load_generator(identity_base)
    tables = {key: table.detach() for key, table in base.text_encoder.tables.items()}
    if start == "mean":
        assert training["concept_start"] == MEAN
        assert "concept_start_l1" not in training
    else:
        scores = training["concept_start_l1"]
        assert set(scores) == set(tables) | {MEAN}
        assert training["concept_start"] == min(scores, key=scores.get)
        assert concept_key(IDENTITY_PROMPT) in scores
        if training["concept_start"] != MEAN:
            # adapters store half precision
            torch.testing.assert_close(adapter.tensors["concept_embedding"].float(),
                                       tables[training["concept_start"]], atol=1e-3, rtol=0)


def test_an_unknown_concept_start_is_refused():
    with pytest.raises(E2GANError, match="concept start must be one of closest, mean"):
        TrainingSettings(concept_start="random")
