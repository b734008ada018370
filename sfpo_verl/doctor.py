"""`python -m sfpo_verl.doctor`: what this environment can run, as lines to paste into a bug report.

One line per item: the versions of the packages a run depends on, torch's CUDA build and the
CUDA devices it sees, whether verl loads this plugin in a fresh process, and whether a
recipe's MODEL_PATH / DATA_DIR hold what the recipe reads. The last line is the verdict for a
GPU recipe (the default) or for CPU mode (`--cpu`), with the command that fixes each problem.
Exit status: 0 when that mode can run here, 1 when it cannot.

Every probe is guarded: a missing or broken package becomes a line, and so does a probe that
fails unexpectedly (its exception, not a traceback). Only the standard library is imported at
module level, so the doctor itself runs in an environment where everything else is missing.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

GPU, CPU = "gpu", "cpu"
BOTH = frozenset({GPU, CPU})

# Distribution names, in the order they are reported; CPU mode does without the GPU-only ones.
PACKAGES = ("sfpo-verl", "verl", "torch", "vllm", "flash-attn", "transformers", "ray", "math-verify")
GPU_ONLY_PACKAGES = frozenset({"vllm", "flash-attn"})
# What scripts/setup_gpu.sh installs; without a CUDA torch and a CUDA device, "the GPU stack is absent".
GPU_STACK = frozenset({*GPU_ONLY_PACKAGES, "torch CUDA build", "CUDA devices"})
RECIPE_INPUTS = frozenset({"model path", "data dir"})
TORCH_CUDA_MAJOR = 13  # torch 2.11.0 from PyPI, the one verl[vllm]==0.9.1 pins, is a CUDA 13 build

SETUP_GPU = "bash scripts/setup_gpu.sh"
REINSTALL = "pip install -e .  (in the repository root)"
QUICKSTART = "bash scripts/quickstart.sh"
SHOW_PLUGIN_ERROR = 'python -c "import verl, sfpo_verl.plugin"  (shows the error verl hides)'
REGISTRATION_TIMEOUT_S = 300
REPORT_MARK = "sfpo-doctor-registration:"

# Statuses of a finding; the last three stop a mode that needs the item.
OK, INFO, SKIPPED, MISSING, FAIL, ERROR = "ok", "info", "skipped", "missing", "fail", "error"
PROBLEMS = (MISSING, FAIL, ERROR)


@dataclass
class Finding:
    item: str
    status: str
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class Probe:
    item: str
    needed_for: frozenset[str]  # the modes that cannot run when this item has a problem
    run: Callable[[], Finding]


# ---------------------------------------------------------------------------------------------
# Probes. Each returns one Finding; run_probe turns an unexpected exception into one too.


def probe_python() -> Finding:
    return Finding(
        "python", INFO, f"{platform.python_version()} {sys.executable} ({platform.system()} {platform.machine()})"
    )


def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def probe_package(distribution: str) -> Finding:
    version = installed_version(distribution)
    if version is None:
        fix = SETUP_GPU if distribution in GPU_ONLY_PACKAGES else REINSTALL
        return Finding(distribution, MISSING, "not installed", fix)
    if distribution == "vllm":
        return _vllm_finding(version)
    if distribution == "flash-attn":
        return _flash_attn_finding(version)
    return Finding(distribution, OK, version)


def _vllm_finding(version: str) -> Finding:
    # vllm wheels are built against one torch release and pin it exactly.
    pinned = [
        r.split("==", 1)[1].split(";")[0].strip()
        for r in importlib.metadata.requires("vllm") or []
        if r.startswith("torch==")
    ]
    torch_version = installed_version("torch") or "none"
    if pinned and torch_version.split("+")[0] != pinned[0]:
        return Finding("vllm", FAIL, f"{version}, built for torch=={pinned[0]} but torch is {torch_version}", SETUP_GPU)
    return Finding("vllm", OK, version)


def _flash_attn_finding(version: str) -> Finding:
    # flash-attn is compiled against the torch it was built with; another torch fails at import.
    try:
        import flash_attn  # noqa: F401
    except Exception as error:  # ImportError, or OSError from a missing CUDA library
        rebuild = f"pip install --no-build-isolation --force-reinstall --no-deps flash-attn=={version}"
        return Finding("flash-attn", FAIL, f"{version}, import fails: {_one_line(error)}", rebuild)
    return Finding("flash-attn", OK, version)


def probe_torch_cuda_build() -> Finding:
    if installed_version("torch") is None:
        return Finding("torch CUDA build", MISSING, "torch not installed", SETUP_GPU)
    import torch

    if torch.version.cuda is None:
        return Finding("torch CUDA build", FAIL, f"none: torch {torch.__version__} is a CPU-only build", SETUP_GPU)
    if int(torch.version.cuda.split(".")[0]) != TORCH_CUDA_MAJOR:
        detail = f"CUDA {torch.version.cuda}, but the GPU stack (vllm 0.24.0) is built for CUDA {TORCH_CUDA_MAJOR}"
        return Finding("torch CUDA build", FAIL, detail, SETUP_GPU)
    return Finding("torch CUDA build", OK, f"CUDA {torch.version.cuda} (torch {torch.__version__})")


def probe_cuda_devices() -> Finding:
    if installed_version("torch") is None:
        return Finding("CUDA devices", MISSING, "none: torch not installed", SETUP_GPU)
    import torch

    if torch.version.cuda is None:
        return Finding("CUDA devices", MISSING, "none: torch has no CUDA", SETUP_GPU)
    if not torch.cuda.is_available():
        detail = "none visible: no NVIDIA driver, or CUDA_VISIBLE_DEVICES hides the GPUs"
        return Finding("CUDA devices", MISSING, detail, "run on a machine where `nvidia-smi` lists a GPU")
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(f"{props.name} {props.total_memory / 2**30:.1f} GiB sm_{props.major}{props.minor}")
    distinct = sorted(set(devices))
    listing = f"{len(devices)} x {distinct[0]}" if len(distinct) == 1 else f"{len(devices)}: " + "; ".join(devices)
    return Finding("CUDA devices", OK, listing)


def probe_plugin_registration(mode: str) -> Finding:
    """Ask a fresh interpreter whether `import verl` loaded this plugin and its registrations.

    verl loads `verl.plugins` entry points in every process that imports it but logs a failure
    only at DEBUG level, so the only proof is to look in a process that did nothing else.
    """
    item = "verl plugin"
    declared = [ep for ep in importlib.metadata.entry_points(group="verl.plugins") if ep.name == "sfpo_verl"]
    if not declared:
        return Finding(
            item, FAIL, "entry point verl.plugins:sfpo_verl is not declared (package not installed?)", REINSTALL
        )
    env = dict(os.environ)
    if mode == CPU:
        env["VERL_PLATFORM"] = "cpu"  # what trainer.device=cpu sets; it turns on the CPU engine registration
    code = "import sfpo_verl.doctor as d; d.print_registration_report()"
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=REGISTRATION_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return Finding(item, ERROR, f"the check did not finish in {REGISTRATION_TIMEOUT_S} s")
    reports = [line[len(REPORT_MARK) :] for line in result.stdout.splitlines() if line.startswith(REPORT_MARK)]
    if not reports:
        detail = f"the check process failed (exit {result.returncode}): {_last_line(result.stderr)}"
        return Finding(item, ERROR, detail, SHOW_PLUGIN_ERROR)
    report = json.loads(reports[-1])
    registrations = ["cpu platform", *(["cpu engine"] if mode == CPU else []), "hf rollout"]
    wanted = ["plugin loaded", *registrations, "SFPO trainer"]
    # A check that raised reports its error instead of False.
    absent = [
        name if report.get(name) is False else f"{name} ({report.get(name)})"
        for name in wanted
        if report.get(name) is not True
    ]
    if absent:
        detail = f"{declared[0].value} via `import verl` in a fresh process; not done: {', '.join(absent)}"
        return Finding(item, FAIL, detail, SHOW_PLUGIN_ERROR)
    detail = (
        f"{declared[0].value} loaded by `import verl` in a fresh process; "
        f"registered: {', '.join(registrations)}; SFPO trainer imports"
    )
    return Finding(item, OK, detail)


def print_registration_report() -> None:
    """Runs in the fresh process of probe_plugin_registration: one line, REPORT_MARK + JSON.

    Each value is True, False, or the error that stopped the check.
    """
    report: dict[str, bool | str] = {}

    def check(name: str, test: Callable[[], bool]) -> None:
        try:
            report[name] = bool(test())
        except Exception as error:
            report[name] = _one_line(error)

    def verl_loads_plugin() -> bool:
        import verl  # noqa: F401  # loads every verl.plugins entry point

        return "sfpo_verl.plugin" in sys.modules

    def cpu_platform() -> bool:
        from verl.plugin.platform import PlatformRegistry

        return PlatformRegistry.get("cpu") is not None

    def cpu_engine() -> bool:
        from sfpo_verl.cpu.verl_seams import engine_registered

        return engine_registered("language_model", "fsdp2", "cpu")

    def hf_rollout() -> bool:
        from sfpo_verl.cpu.rollout.registration import registered

        return registered()

    def sfpo_trainer() -> bool:
        # The trainer and worker subclass verl's classes: they import only against a matching verl.
        import sfpo_verl.core.trainer.sfpo_trainer  # noqa: F401
        import sfpo_verl.core.workers.sfpo_worker  # noqa: F401

        return True

    check("plugin loaded", verl_loads_plugin)
    for name, test in (
        ("cpu platform", cpu_platform),
        ("cpu engine", cpu_engine),
        ("hf rollout", hf_rollout),
        ("SFPO trainer", sfpo_trainer),
    ):
        check(name, test)
    print(REPORT_MARK + json.dumps(report), flush=True)


def probe_model_path(path: str | None) -> Finding:
    if not path:
        return Finding("model path", SKIPPED, "not checked: give --model-path or set MODEL_PATH")
    folder = Path(path).expanduser()
    if (folder / "config.json").is_file():
        return Finding("model path", OK, f"{path} (config.json found)")
    reason = "does not exist" if not folder.exists() else "has no config.json"
    return Finding("model path", MISSING, f"{path} {reason}", f"huggingface-cli download <hub id> --local-dir {path}")


def probe_data_dir(path: str | None) -> Finding:
    if not path:
        return Finding("data dir", SKIPPED, "not checked: give --data-dir or set DATA_DIR")
    from sfpo_verl.paper.data.prepare import TRAIN_FILE
    from sfpo_verl.paper.numbers import BENCHMARKS

    # The files every recipe reads from DATA_DIR (recipes/_common.sh), as prepare_data writes them.
    expected = [TRAIN_FILE, *(f"{name}.parquet" for name in BENCHMARKS)]
    folder = Path(path).expanduser()
    missing = [name for name in expected if not (folder / name).is_file()]
    if not missing:
        return Finding("data dir", OK, f"{path} ({', '.join(expected)})")
    what = "does not exist" if not folder.exists() else f"lacks {', '.join(missing)}"
    return Finding(
        "data dir", MISSING, f"{path} {what}", f"python scripts/prepare_data.py --out-dir {path} --all-from-hub"
    )


# ---------------------------------------------------------------------------------------------
# Running the probes and the verdict.


def probes(mode: str, model_path: str | None, data_dir: str | None) -> list[Probe]:
    # Built per call from the module's functions, so a test can replace any of them.
    package_probes = [
        Probe(name, frozenset({GPU}) if name in GPU_ONLY_PACKAGES else BOTH, lambda name=name: probe_package(name))
        for name in PACKAGES
    ]
    return [
        Probe("python", frozenset(), probe_python),
        *package_probes,
        Probe("torch CUDA build", frozenset({GPU}), probe_torch_cuda_build),
        Probe("CUDA devices", frozenset({GPU}), probe_cuda_devices),
        Probe("verl plugin", BOTH, lambda: probe_plugin_registration(mode)),
        Probe("model path", BOTH, lambda: probe_model_path(model_path)),
        Probe("data dir", BOTH, lambda: probe_data_dir(data_dir)),
    ]


def run_probe(probe: Probe) -> Finding:
    try:
        return probe.run()
    except Exception as error:
        return Finding(probe.item, ERROR, f"the check itself failed: {_one_line(error)}")


def verdict(mode: str, results: list[tuple[Probe, Finding]]) -> tuple[bool, str]:
    blocking = [finding for probe, finding in results if finding.status in PROBLEMS and mode in probe.needed_for]
    if mode == CPU:
        if not blocking:
            return True, f"CPU mode (trainer.device=cpu) can run here, e.g. the quickstart: {QUICKSTART}"
        return False, f"CPU mode cannot run here ({_names(blocking)}).{_fixes(blocking)}"
    if not blocking:
        return True, "a GPU recipe can run here"
    status = {finding.item: finding.status for _, finding in results}
    if status["torch CUDA build"] != OK and status["CUDA devices"] != OK:
        # The quickstart builds its own model and data: a recipe's paths do not decide CPU mode.
        cpu_blocking = [
            f for p, f in results if f.status in PROBLEMS and CPU in p.needed_for and f.item not in RECIPE_INPUTS
        ]
        cpu_text = (
            f"CPU mode (trainer.device=cpu, the quickstart: {QUICKSTART}) is what works here"
            if not cpu_blocking
            else "CPU mode does not work here either (python -m sfpo_verl.doctor --cpu says why)"
        )
        stack = [f for f in blocking if f.item in GPU_STACK]
        rest = [f for f in blocking if f.item not in GPU_STACK]
        return False, (
            f"a GPU recipe cannot run here: the GPU stack is absent ({_names(stack)}). {cpu_text}. "
            f"For a GPU recipe, on a machine with an NVIDIA GPU: {SETUP_GPU}.{_fixes(rest)}"
        )
    return False, f"a GPU recipe cannot run here ({_names(blocking)}).{_fixes(blocking)}"


def _names(findings: list[Finding]) -> str:
    return ", ".join(f"{finding.item} {finding.status}" for finding in findings)


def _fixes(findings: list[Finding]) -> str:
    fixes = list(dict.fromkeys(finding.fix for finding in findings if finding.fix))
    return f" Fix: {'; '.join(fixes)}" if fixes else ""


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def render(mode: str, results: list[tuple[Probe, Finding]], ok: bool, summary: str) -> str:
    title = "CPU mode" if mode == CPU else "a GPU recipe"
    lines = [f"sfpo-verl doctor: can {title} run here?"]
    for probe, finding in results:
        note = " (not needed in CPU mode)" if finding.status in PROBLEMS and mode not in probe.needed_for else ""
        lines.append(f"{finding.item:<17}{finding.status:<8}{finding.detail}{note}")
    lines.append(f"{'verdict':<17}{'ok' if ok else 'fail':<8}{summary}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sfpo_verl.doctor",
        description="Check this environment for a GPU recipe (default) or CPU mode (--cpu); "
        "exit 0 when it can run, 1 when not, naming the fix.",
    )
    parser.add_argument("--cpu", action="store_true", help="check only what CPU mode (trainer.device=cpu) needs")
    parser.add_argument(
        "--model-path", default=os.environ.get("MODEL_PATH"), help="a recipe's MODEL_PATH (default: $MODEL_PATH)"
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get("DATA_DIR"), help="a recipe's DATA_DIR (default: $DATA_DIR)"
    )
    parser.add_argument("--json", action="store_true", help="print the findings as one JSON object")
    args = parser.parse_args(argv)

    mode = CPU if args.cpu else GPU
    results = [(probe, run_probe(probe)) for probe in probes(mode, args.model_path, args.data_dir)]
    ok, summary = verdict(mode, results)
    if args.json:
        items = [{**asdict(f), "needed_for": sorted(p.needed_for)} for p, f in results]
        print(json.dumps({"mode": mode, "ok": ok, "verdict": summary, "items": items}, indent=1))
    else:
        print(render(mode, results, ok, summary))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
