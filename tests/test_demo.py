import json

import pytest

from e2gan.cli import main
from e2gan.bench.demo import DemoSettings, run_demo
from e2gan.errors import E2GANError


@pytest.mark.slow
def test_demo_runs_end_to_end_and_writes_a_report(tiny_base, tmp_path):
    settings = DemoSettings(concept="winter", size=32, pairs=20, subset=8,
                            finetune_minutes=0.02, base=str(tiny_base), device="cpu")
    report = run_demo(str(tmp_path / "demo"), settings)
    models = [row["model"] for row in report["rows"]]
    assert models[0].startswith("E2GAN") and models[1].startswith("pix2pix")
    e2gan_row, pix2pix_row = report["rows"][0], report["rows"][1]
    # The adapter trains a small fraction of what pix2pix trains and stores far less.
    assert e2gan_row["trainable_parameters"] < pix2pix_row["trainable_parameters"] / 10
    assert e2gan_row["stored_bytes"] < pix2pix_row["stored_bytes"] / 10
    assert e2gan_row["train_pairs"] == 8 and pix2pix_row["train_pairs"] == report["pairs"]["train"]
    for row in report["rows"]:
        assert 0 < row["psnr"] < 100 and -1 <= row["ssim"] <= 1
    saved = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert saved["rows"] == report["rows"]
    assert (tmp_path / "demo" / "comparison.png").is_file()
    assert "| E2GAN (base + LoRA) |" in (tmp_path / "demo" / "report.md").read_text()


def test_demo_refuses_a_concept_the_base_was_trained_on(tiny_base, tmp_path):
    settings = DemoSettings(concept="night", size=32, pairs=8, subset=4, finetune_minutes=0.01,
                            base=str(tiny_base), device="cpu")
    with pytest.raises(E2GANError, match="trained on 'night'"):
        run_demo(str(tmp_path / "demo"), settings)


def test_demo_cli_reports_an_unknown_concept_in_one_line(tiny_base, tmp_path, capsys):
    code = main(["demo", "--concept", "underwater", "--base", str(tiny_base),
                 "--out", str(tmp_path / "d"), "--json"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().startswith("error: unknown built-in concept 'underwater'")
    assert "Traceback" not in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["error"]
