import torch

from e2gan.models import lora
from e2gan.checkpoint import load_generator
from e2gan.training.rank_search import RankSearchSettings, format_rank_table, grow_adapter, search_ranks


def test_growing_an_adapter_keeps_its_function(tiny_base):
    generator = load_generator(tiny_base).generator
    layers = lora.crucial_layers(generator)
    lora.add_adapter(generator, "c", {layer: 1 for layer in layers})
    for layer in lora.lora_layers(generator).values():
        torch.nn.init.normal_(layer.lora_B["c"].weight, std=0.1)
    source, text = torch.randn(2, 3, 32, 32), torch.randn(2, 4, 16)
    before = generator(source, text)
    grow_adapter(generator, "c", {layer: 2 for layer in layers})
    assert set(lora.adapter_ranks(generator, "c").values()) == {2}
    torch.testing.assert_close(generator(source, text), before, atol=1e-5, rtol=1e-5)


def test_rank_search_doubles_ranks_within_caps_and_reports_a_table(tiny_base, tiny_pairs):
    settings = RankSearchSettings(steps_per_round=2, max_rounds=3, patience=5, size=32,
                                  batch_size=4, device="cpu", eval_limit=4)
    result = search_ranks(str(tiny_base), [tiny_pairs["winter"]], settings)
    rounds = result["per_concept"][0]["rounds"]
    assert len(rounds) == 3
    # Every round doubles each layer's rank until that layer's cap.
    for earlier, later in zip(rounds, rounds[1:]):
        for layer, rank in earlier["ranks"].items():
            assert later["ranks"][layer] == min(2 * rank, result["caps"][layer])
    best = result["per_concept"][0]["best"]
    assert best["score"] == min(r["score"] for r in rounds)
    assert result["ranks"] == best["ranks"]
    assert all(1 <= rank <= result["caps"][layer] for layer, rank in result["ranks"].items())
    table = format_rank_table(result)
    assert "chosen" in table and "LoRA parameters" in table


def test_rank_search_can_judge_rounds_by_fid_as_the_paper_does(tiny_base, tiny_pairs, monkeypatch):
    from stand_in_inception import use_stand_in

    seen = use_stand_in(monkeypatch)
    settings = RankSearchSettings(steps_per_round=1, max_rounds=2, patience=5, size=32,
                                  batch_size=4, device="cpu", eval_limit=4, score="fid")
    result = search_ranks(str(tiny_base), [tiny_pairs["winter"]], settings)
    rounds = result["per_concept"][0]["rounds"]
    assert result["score"].startswith("FID") and len(rounds) == 2
    # Each round ran the feature network on its model's held-out edits (4 images).
    assert sum(seen) >= 2 * 4
    mae = RankSearchSettings(steps_per_round=1, max_rounds=2, patience=5, size=32, batch_size=4,
                             device="cpu", eval_limit=4)
    by_mae = search_ranks(str(tiny_base), [tiny_pairs["winter"]], mae)["per_concept"][0]["rounds"]
    assert [r["score"] for r in rounds] != [r["score"] for r in by_mae]
    assert result["per_concept"][0]["best"]["score"] == min(r["score"] for r in rounds)


def test_rank_search_refuses_an_unknown_score():
    import pytest

    from e2gan.errors import E2GANError

    with pytest.raises(E2GANError, match="unknown rank-search score 'psnr'"):
        RankSearchSettings(score="psnr")
    with pytest.raises(E2GANError, match="at least 2 held-out pairs"):
        RankSearchSettings(score="fid", eval_limit=1)
