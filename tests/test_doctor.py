"""`python -m sfpo_verl.doctor` on this CPU machine: every package's version, the GPU stack
reported absent with a non-zero exit for a GPU recipe, the plugin registered in a fresh
process, a recipe's missing paths named, CPU mode passing, and no traceback whatever breaks."""

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from processes import run_at_once

from sfpo_verl import doctor
from sfpo_verl.paper.data.prepare import TRAIN_FILE
from sfpo_verl.paper.numbers import BENCHMARKS

ROOT = Path(__file__).resolve().parents[1]

PACKAGES = ("sfpo-verl", "verl", "torch", "vllm", "flash-attn", "transformers", "ray", "math-verify")


def doctor_command(*args: str, **env: str) -> tuple[list[str], dict[str, str]]:
    # A user's shell: no VERL_PLATFORM (conftest sets it for in-process tests) and no recipe paths.
    base = {k: v for k, v in os.environ.items() if k not in ("VERL_PLATFORM", "MODEL_PATH", "DATA_DIR")}
    return [sys.executable, "-m", "sfpo_verl.doctor", *args], {**base, **env}


def line(output: str, item: str) -> str:
    """The line of one item: the item's name fills the first column."""
    (found,) = [text for text in output.splitlines() if text[:17].rstrip() == item]
    return found


@pytest.fixture(scope="module")
def recipe_inputs(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inputs")
    model, data = root / "model", root / "data"
    model.mkdir()
    (model / "config.json").write_text("{}")
    data.mkdir()
    for name in (TRAIN_FILE, *(f"{benchmark}.parquet" for benchmark in BENCHMARKS)):
        (data / name).write_bytes(b"")
    return model, data


@pytest.fixture(scope="module")
def doctor_runs(recipe_inputs, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """The doctor's two runs, at once: the GPU check with recipe paths that do not exist, and CPU
    mode with the recipe inputs named in the environment."""
    missing = tmp_path_factory.mktemp("absent")
    model, data = recipe_inputs
    runs = {"gpu_check": doctor_command("--model-path", str(missing / "model"), "--data-dir", str(missing / "data")),
            "cpu_mode": doctor_command("--cpu", "--json", MODEL_PATH=str(model), DATA_DIR=str(data))}
    return run_at_once({name: args for name, (args, _) in runs.items()}, timeout_s=600,
                       envs={name: env for name, (_, env) in runs.items()}, cwd=ROOT)


@pytest.fixture(scope="module")
def gpu_check(doctor_runs) -> subprocess.CompletedProcess:
    return doctor_runs["gpu_check"]


def test_prints_every_package_version(gpu_check):
    for distribution in PACKAGES:
        try:
            expected = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            expected = "not installed"
        assert expected in line(gpu_check.stdout, distribution)


@pytest.mark.verl09(reason="the doctor checks the verl.plugins entry point and CPU mode")
@pytest.mark.skipif(torch.cuda.is_available(), reason="describes a machine without a CUDA device")
def test_a_gpu_recipe_fails_here_and_the_verdict_points_to_cpu_mode(gpu_check):
    assert gpu_check.returncode == 1
    assert "none: torch" in line(gpu_check.stdout, "torch CUDA build")
    assert "torch has no CUDA" in line(gpu_check.stdout, "CUDA devices")
    verdict = line(gpu_check.stdout, "verdict")
    assert "the GPU stack is absent" in verdict
    assert "CPU mode (trainer.device=cpu, the quickstart: bash scripts/quickstart.sh) is what works here" in verdict
    assert "bash scripts/setup_gpu.sh" in verdict
    assert gpu_check.stdout.splitlines()[-1].startswith("verdict ")
    assert "Traceback" not in gpu_check.stdout + gpu_check.stderr


@pytest.mark.verl09(reason="the doctor checks the verl.plugins entry point and CPU mode")
def test_the_plugin_registers_in_a_fresh_process(gpu_check):
    plugin = line(gpu_check.stdout, "verl plugin")
    assert plugin.split()[2] == "ok", plugin
    assert "cpu platform" in plugin and "hf rollout" in plugin


def test_missing_recipe_paths_are_named_with_the_command_that_fixes_them(gpu_check):
    model_line, data_line = line(gpu_check.stdout, "model path"), line(gpu_check.stdout, "data dir")
    assert "missing" in model_line and "/model does not exist" in model_line
    assert "missing" in data_line and "/data does not exist" in data_line
    verdict = line(gpu_check.stdout, "verdict")
    assert "huggingface-cli download <hub id> --local-dir " in verdict
    assert "python scripts/prepare_data.py --out-dir " in verdict and "--all-from-hub" in verdict


@pytest.mark.verl09(reason="the doctor checks the verl.plugins entry point and CPU mode")
def test_cpu_mode_passes_here_with_the_recipe_inputs_from_the_environment(doctor_runs):
    result = doctor_runs["cpu_mode"]
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "cpu" and report["ok"] is True
    status = {item["item"]: item["status"] for item in report["items"]}
    assert status["verl plugin"] == "ok"  # in CPU mode this includes the CPU engine
    assert status["model path"] == status["data dir"] == "ok"
    needed_for = {item["item"]: item["needed_for"] for item in report["items"]}
    assert needed_for["vllm"] == needed_for["flash-attn"] == ["gpu"]
    assert "bash scripts/quickstart.sh" in report["verdict"]


def test_the_data_dir_check_names_each_missing_file(tmp_path):
    (tmp_path / TRAIN_FILE).write_bytes(b"")
    finding = doctor.probe_data_dir(str(tmp_path))
    assert finding.status == "missing"
    assert finding.detail == f"{tmp_path} lacks " + ", ".join(f"{b}.parquet" for b in BENCHMARKS)


def test_a_broken_probe_becomes_a_line_not_a_traceback(monkeypatch, capsys):
    def broken(*args):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(doctor, "probe_cuda_devices", broken)
    monkeypatch.setattr(doctor, "probe_plugin_registration", broken)
    monkeypatch.setattr(doctor, "installed_version", broken)

    assert doctor.main(["--cpu"]) == 1  # an unverifiable plugin stops CPU mode
    output = capsys.readouterr().out
    for item in ("CUDA devices", "verl plugin", "verl", "torch", "torch CUDA build"):
        assert line(output, item)[17:].startswith("error   the check itself failed: RuntimeError: probe exploded")
    assert line(output, "verdict")[17:].startswith("fail    CPU mode cannot run here (")
