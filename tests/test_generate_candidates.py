"""Generating datasets with diffusion teachers: phrasings, resume, stop, and the CLIP filter."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from e2gan.data.dataset import PairDataset
from e2gan.data.generate import CANDIDATE_SEED_STRIDE, generate_pairs, resolve_concept
from e2gan.data.sources import builtin_photos
from e2gan.errors import E2GANError
from e2gan.teachers import create_teacher
from e2gan.teachers.candidates import CandidateFilter

TINY = {"resolution": 32, "num_inference_steps": 2}


@pytest.fixture(scope="module")
def scorer():
    from e2gan.teachers.clip_scores import ClipScorer

    return ClipScorer.tiny_random(seed=0)


def _ip2p(models, **knobs):
    return create_teacher("instruct-pix2pix", model=models["instruct-pix2pix"], **{**TINY, **knobs})


def _pairs(dataset: PairDataset) -> dict[str, tuple[bytes, bytes, dict]]:
    return {record.id: ((dataset.root / record.source).read_bytes(),
                        (dataset.root / record.edited).read_bytes(), record.to_dict())
            for record in dataset}


def test_instruction_teacher_gets_the_instruction_and_the_dataset_keeps_every_phrasing(
        tiny_diffusion_models, tmp_path):
    teacher = _ip2p(tiny_diffusion_models)
    prompt, concept, phrasings = resolve_concept([teacher], "winter")
    assert (prompt, concept) == ("a snowy winter scene", "winter")
    result = generate_pairs(teacher, builtin_photos(3, size=32), prompt, tmp_path / "d",
                            concept=concept, phrasings=phrasings)
    dataset = result.dataset
    assert dataset.info.complete and len(dataset) == 3
    assert dataset.info.prompts == ["a snowy winter scene", "make it winter"]
    assert dataset.info.teacher == "instruct-pix2pix"
    for record in dataset:
        assert record.prompt == "a snowy winter scene"  # what the GAN is conditioned on
        assert record.teacher_params["teacher_prompt"] == "make it winter"  # what IP2P was told
        assert record.teacher_params["model"] == tiny_diffusion_models["instruct-pix2pix"]
    assert dataset.info.phrasings == {"description": "a snowy winter scene",
                                      "instruction": "make it winter"}
    # Free text: each phrasing is made from the text unless given; a built-in-only teacher
    # refuses it.
    assert resolve_concept([teacher], "add fireworks", instruction="add fireworks to the sky")[2] == {
        "description": "a photo with fireworks", "instruction": "add fireworks to the sky"}
    with pytest.raises(E2GANError, match="unknown built-in concept"):
        resolve_concept([create_teacher("builtin")], "add fireworks")


def test_free_text_is_phrased_both_ways_overrides_win_and_the_dataset_records_them(
        tiny_diffusion_models, tmp_path, capsys):
    from e2gan.cli import main
    from e2gan.data.pair_format import DatasetInfo

    teacher = _ip2p(tiny_diffusion_models)
    prompt, concept, phrasings = resolve_concept([teacher], "old person")
    assert (prompt, concept) == ("old person", "old_person")
    assert phrasings == {"description": "old person", "instruction": "make it look like old person"}
    told, edit = [], teacher.edit
    teacher.edit = lambda images, text, seeds: told.append(text) or edit(images, text, seeds)
    generate_pairs(teacher, builtin_photos(2, size=32), prompt, tmp_path / "d", concept=concept,
                   phrasings=phrasings)
    assert set(told) == {"make it look like old person"}  # InstructPix2Pix got an instruction
    dataset = PairDataset.open(tmp_path / "d")  # read back from dataset.json
    assert dataset.info.phrasings == phrasings and dataset.info.prompt == "old person"
    assert resolve_concept([teacher], "old person", description="an old person",
                           instruction="turn them into an old person")[::2] == (
        "an old person", {"description": "an old person", "instruction": "turn them into an old person"})

    model = ["--model", tiny_diffusion_models["instruct-pix2pix"], "--resolution", "32", "--steps",
             "2", "--count", "2", "--size", "32", "--quiet", "--json"]
    code = main(["pairs", "--concept", "old person", "--teacher", "instruct-pix2pix", *model,
                 "--instruction", "turn them into an old person", "--out", str(tmp_path / "e")])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    wanted = {"description": "old person", "instruction": "turn them into an old person"}
    assert code == 0 and summary["phrasings"] == wanted
    dataset = PairDataset.open(tmp_path / "e")
    assert dataset.info.phrasings == wanted
    assert {(r.prompt, r.teacher_params["teacher_prompt"]) for r in dataset} == {
        ("old person", "turn them into an old person")}
    # An img2img teacher is given the description, which is also the GAN's prompt.
    model[1] = tiny_diffusion_models["sd-turbo"]
    code = main(["pairs", "--concept", "old person", "--teacher", "sd-turbo", *model,
                 "--description", "an elderly person", "--out", str(tmp_path / "f")])
    assert code == 0, capsys.readouterr().err
    dataset = PairDataset.open(tmp_path / "f")
    assert dataset.info.phrasings == {"description": "an elderly person",
                                      "instruction": "make it look like old person"}
    assert {record.prompt for record in dataset} == {"an elderly person"}
    assert not any("teacher_prompt" in record.teacher_params for record in dataset)
    with pytest.raises(E2GANError, match="phrasings must map"):
        DatasetInfo.from_dict({**dataset.info.to_dict(), "phrasings": ["old person"]})


def test_stop_inside_a_batch_then_resume_gives_the_uninterrupted_dataset(tiny_diffusion_models, tmp_path):
    source = builtin_photos(6, size=32, seed=1)
    reference = generate_pairs(_ip2p(tiny_diffusion_models), source, "make it winter",
                               tmp_path / "reference", batch_size=2).dataset
    polls = []

    def stop_during_second_batch() -> bool:
        polls.append(1)
        return len(polls) > 4  # between-batch polls and per-step polls both count

    first = generate_pairs(_ip2p(tiny_diffusion_models), source, "make it winter", tmp_path / "d",
                           batch_size=2, should_stop=stop_during_second_batch)
    assert first.stopped_early and not first.dataset.info.complete
    assert 0 < len(first.dataset) < 6 and len(first.dataset) % 2 == 0  # whole batches only
    second = generate_pairs(_ip2p(tiny_diffusion_models), source, "make it winter", tmp_path / "d",
                            batch_size=2)
    assert second.skipped == len(first.dataset) and second.made == 6 - len(first.dataset)
    assert second.dataset.info.complete
    assert _pairs(second.dataset) == _pairs(reference)  # no pair lost, doubled or changed


def test_clip_filter_keeps_the_best_passing_candidate_and_stores_its_scores(
        tiny_diffusion_models, tmp_path, scorer):
    permissive = CandidateFilter(scorer, min_image_similarity=-1, min_direction_similarity=-1,
                                 min_caption_similarity=-1)
    teacher = create_teacher("sd-img2img", model=tiny_diffusion_models["sd-img2img"], **TINY)
    source = builtin_photos(3, size=32, seed=2)
    result = generate_pairs(teacher, source, "a snowy winter scene", tmp_path / "d", seed=5,
                            candidates=3, candidate_filter=permissive)
    dataset = result.dataset
    assert len(dataset) == 3 and dataset.info.teacher_params["candidates"] == 3
    assert dataset.info.teacher_params["clip_filter"]["min_image_similarity"] == -1
    variants = teacher.variants(3)
    for index, record in enumerate(dataset):
        assert set(record.scores) == {"clip_image_similarity", "clip_direction_similarity",
                                      "clip_caption_similarity"}
        chosen = record.teacher_params["candidate"]
        assert record.seed == 5 + index + chosen * CANDIDATE_SEED_STRIDE
        assert record.teacher_params["strength"] == variants[chosen].settings["strength"]
        # Recompute every candidate: the kept one has the highest directional similarity.
        image = dataset.load_pair(record)[0]
        edits = [v.edit([image], "a snowy winter scene", [5 + index + c * CANDIDATE_SEED_STRIDE])[0]
                 for c, v in enumerate(variants)]
        direction = scorer.edit_scores([image] * 3, edits, "a photo",
                                       "a snowy winter scene")["direction_similarity"]
        assert chosen == int(np.argmax(direction))
        assert record.scores["clip_direction_similarity"] == pytest.approx(float(direction[chosen]), abs=1e-3)


def test_rejected_images_are_logged_skipped_on_rerun_and_retried_under_new_thresholds(
        tiny_diffusion_models, tmp_path, scorer):
    impossible = CandidateFilter(scorer, min_image_similarity=1.01)
    teacher = create_teacher("builtin")
    source = builtin_photos(4, size=32, seed=3)
    first = generate_pairs(teacher, source, "a snowy winter scene", tmp_path / "d", candidates=2,
                           candidate_filter=impossible)
    assert (first.made, first.rejected, len(first.dataset)) == (0, 4, 0)
    assert first.dataset.info.complete  # every image was decided
    lines = [json.loads(line) for line in (tmp_path / "d" / "rejected.jsonl").read_text().splitlines()]
    assert [line["id"] for line in lines] == source.ids
    assert all(set(line["scores"]) >= {"clip_image_similarity"} for line in lines)
    again = generate_pairs(teacher, source, "a snowy winter scene", tmp_path / "d", candidates=2,
                           candidate_filter=impossible)
    assert (again.made, again.rejected) == (0, 0)  # nothing made twice
    relaxed = CandidateFilter(scorer, min_image_similarity=0.0, min_direction_similarity=-1,
                              min_caption_similarity=-1)
    retried = generate_pairs(teacher, source, "a snowy winter scene", tmp_path / "d", candidates=2,
                             candidate_filter=relaxed)
    assert retried.made == 4 and len(retried.dataset) == 4


def test_candidate_filter_choice_rules():
    class NoScorer:
        pass

    rule = CandidateFilter(NoScorer())

    def scores(image, direction, caption):
        return {"clip_image_similarity": image, "clip_direction_similarity": direction,
                "clip_caption_similarity": caption}

    candidates = [scores(0.9, 0.25, 0.3), scores(0.6, 0.9, 0.3), scores(0.8, 0.4, 0.21)]
    assert rule.choose(candidates) == (2, 1)  # 1 changed most but lost the picture
    assert rule.choose([scores(0.9, 0.1, 0.3), scores(0.9, 0.5, 0.1)]) == (None, 1)


def test_several_candidates_need_a_filter_and_several_teachers_can_compete(
        tiny_diffusion_models, tmp_path, scorer):
    with pytest.raises(E2GANError, match="need a CLIP filter"):
        generate_pairs(create_teacher("builtin"), builtin_photos(2, size=32), "a snowy winter scene",
                       tmp_path / "x", candidates=2)
    assert not (tmp_path / "x").exists()
    permissive = CandidateFilter(scorer, min_image_similarity=-1, min_direction_similarity=-1,
                                 min_caption_similarity=-1)
    teachers = [_ip2p(tiny_diffusion_models),
                create_teacher("sd-turbo", model=tiny_diffusion_models["sd-turbo"], **TINY)]
    prompt, concept, phrasings = resolve_concept(teachers, "winter")
    result = generate_pairs(teachers, builtin_photos(3, size=32), prompt, tmp_path / "d",
                            concept=concept, phrasings=phrasings, candidate_filter=permissive)
    assert result.dataset.info.teacher == "instruct-pix2pix+sd-turbo"
    for record in result.dataset:
        assert record.teacher in ("instruct-pix2pix", "sd-turbo")
        assert record.teacher_params["teacher"] == record.teacher
        if record.teacher == "instruct-pix2pix":
            assert record.teacher_params["teacher_prompt"] == "make it winter"
        else:
            assert "teacher_prompt" not in record.teacher_params  # the description is the prompt


def test_cli_pairs_with_a_diffusion_teacher_and_the_clip_filter(tiny_diffusion_models, tmp_path, capsys):
    from e2gan.cli import main

    out = tmp_path / "d"
    code = main(["pairs", "--concept", "winter", "--teacher", "sd-turbo", "--model",
                 tiny_diffusion_models["sd-turbo"], "--resolution", "32", "--steps", "2",
                 "--strength", "0.75", "--count", "3", "--size", "32", "--out", str(out),
                 "--candidates", "2", "--clip-filter", "tiny-random", "--min-image-similarity",
                 "-1", "--min-direction-similarity", "-1", "--min-caption-similarity", "-1",
                 "--quiet", "--json"])
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and summary["pairs"] == 3 and summary["complete"]
    dataset = PairDataset.open(out)
    assert dataset.info.teacher_params["strength"] == 0.75
    assert dataset.info.prompts == ["a snowy winter scene", "make it winter"]
    code = main(["pairs", "--concept", "winter", "--strength", "0.5", "--count", "2",
                 "--out", str(tmp_path / "e"), "--json"])
    assert code == 2 and "strength" in capsys.readouterr().err  # the built-in teacher has no knobs
    code = main(["pairs", "--concept", "winter", "--teacher", "instruct-pix2pix", "--model",
                 "someone/not-cached", "--count", "2", "--out", str(tmp_path / "f"), "--json"])
    error = capsys.readouterr().err
    assert code == 2 and "download someone/not-cached" in error and error.count("\n") == 1
    assert not (tmp_path / "f").exists()
