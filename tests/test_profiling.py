"""The latency floor (MACs over a measured sgemm rate) and onnxruntime latency beside torch eager."""

from __future__ import annotations

import json

import pytest
import torch

from e2gan.evaluation import profiling
from e2gan.export import profile
from e2gan.cli import main


def test_matmul_rate_is_measured_and_threads_are_restored():
    before = torch.get_num_threads()
    rate = profiling.matmul_rate(1, size=256, repeats=2)
    assert torch.get_num_threads() == before
    # any CPU this runs on does between 0.1 and 10,000 GFLOP/s of float32 matmul
    assert 1e8 < rate < 1e13


def test_profile_reports_floor_and_onnxruntime(monkeypatch):
    monkeypatch.setattr(profiling, "SGEMM_SIZE", 256)
    result = profile.profile_architecture("e2gan", size=32, repeats=1, onnx=True, floor=True)
    threads = torch.get_num_threads()
    assert result["floor_threads"] == threads
    rate = result[f"sgemm_gflops_{threads}_thread" + ("s" if threads > 1 else "")] * 1e9
    # floor = 2 x MACs / sgemm rate (both rounded in the report)
    assert result["floor_s"] == pytest.approx(2 * result["macs_g"] * 1e9 / rate, rel=0.01)
    assert result["onnxruntime_latency_median_s"] > 0 and result["latency_median_s"] > 0
    assert result["onnxruntime_over_floor"] == pytest.approx(
        result["onnxruntime_latency_median_s"] / result["floor_s"], rel=0.01)
    assert result["eager_over_floor"] > 0


def test_pix2pix_onnx_latency():
    model = profile.build_model("pix2pix", {"num_filters": 8, "num_residual_blocks": 2})
    timing = profile.onnx_latency(model, 32, repeats=2)
    assert timing["repeats"] == 2 and 0 < timing["latency_min_s"] <= timing["latency_median_s"]


def test_cli_profile_onnx_json(monkeypatch, capsys):
    monkeypatch.setattr(profiling, "SGEMM_SIZE", 256)
    code = main(["profile", "--arch", "pix2pix", "--size", "32", "--repeats", "1", "--onnx",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out.splitlines()[-1])
    for key in ("floor_s", "onnxruntime_latency_median_s", "sgemm_gflops_1_thread",
                "onnxruntime_over_floor", "eager_over_floor"):
        assert result[key] > 0
