#!/usr/bin/env bash
# GPU install from nothing, on a Linux machine with an NVIDIA GPU:
#
#     bash scripts/setup_gpu.sh
#
# 1. Checks what the install needs, before installing anything: a working NVIDIA driver
#    for CUDA 13 (nvidia-smi), Python 3.10-3.12 with its headers, and the CUDA 13 compiler
#    (nvcc) with a C++ compiler, which flash-attn's build uses.
# 2. Makes the virtual environment $SFPO_GPU_VENV, or reuses it (default: .venv in the
#    project root, the one scripts/test.sh and scripts/quickstart.sh use, so they run on
#    the GPU stack afterwards).
# 3. Installs torch $TORCH_VERSION (PyPI's CUDA 13 build), then this project with its `gpu`
#    extra (verl 0.9.1 + vLLM 0.24.0), then flash-attn $FLASH_ATTN_VERSION without build
#    isolation: its build imports torch, which pip's isolated build environment hides.
# 4. Ends with the environment check, python -m sfpo_verl.doctor (its exit status is this
#    script's). Rerunning the script installs only what is missing.
#
# Environment:
#   SFPO_GPU_VENV          the virtual environment (default: <project root>/.venv)
#   PYTHON                 the interpreter that creates it (default: python3)
#   FLASH_ATTN_CUDA_ARCHS  GPU architectures flash-attn is compiled for (flash-attn's
#                          default: "80;90;100;120"). Each takes ~20 min on 16 cores: "90"
#                          alone (H100/H200) cuts the build to that
#   MAX_JOBS               parallel compile jobs (flash-attn's default: from CPUs and memory)
#   MODEL_PATH, DATA_DIR   a recipe's inputs, checked by the final doctor when set
set -euo pipefail

# torch: what verl[vllm]==0.9.1 pins. flash-attn: what verl 0.9.1 pins for that torch (its
# extra flash-attn-cu130torch211) and compiles in its vLLM 0.24 image; no prebuilt wheel
# exists for torch 2.11, so it compiles here. tests/test_gpu_dependencies.py checks both
# against the resolved `gpu` extra and verl's metadata.
TORCH_VERSION=2.11.0
TORCH_CUDA_MAJOR=13
FLASH_ATTN_VERSION=2.8.3

# Only shell builtins until the driver check: with no driver, nothing else runs.
die() {
    echo "setup_gpu: $*" >&2
    exit 1
}
say() {
    echo "[setup_gpu] $*"
}
script_dir=${BASH_SOURCE[0]%/*}
[[ $script_dir == "${BASH_SOURCE[0]}" ]] && script_dir=.

# --- 1. Prerequisites -------------------------------------------------------------------------
command -v nvidia-smi >/dev/null 2>&1 ||
    die "no NVIDIA driver: nvidia-smi was not found, so no GPU can be used. Run this on a machine" \
        "with an NVIDIA GPU and its driver installed. On a CPU machine, use CPU mode instead: bash scripts/quickstart.sh"
smi_output=$(nvidia-smi 2>&1) ||
    die "the NVIDIA driver does not answer (nvidia-smi failed): ${smi_output:-no output}." \
        "Fix or reinstall the driver until nvidia-smi lists the GPUs, then rerun."
if [[ $smi_output =~ CUDA\ Version:\ *([0-9]+)\.([0-9]+) ]] && ((BASH_REMATCH[1] < TORCH_CUDA_MAJOR)); then
    die "the NVIDIA driver runs CUDA up to ${BASH_REMATCH[1]}.${BASH_REMATCH[2]}, but torch $TORCH_VERSION is a" \
        "CUDA $TORCH_CUDA_MAJOR build: upgrade the driver (R580 or newer) and rerun."
fi

PROJECT_ROOT=$(cd "$script_dir/.." && pwd)
VENV=${SFPO_GPU_VENV:-$PROJECT_ROOT/.venv}
PYTHON=${PYTHON:-python3}

command -v "$PYTHON" >/dev/null 2>&1 || die "no Python interpreter '$PYTHON': set PYTHON to Python 3.10, 3.11 or 3.12."
"$PYTHON" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' ||
    die "verl 0.9.1 needs Python 3.10-3.12; '$PYTHON' is $("$PYTHON" --version 2>&1). Set PYTHON, e.g. PYTHON=python3.12."
"$PYTHON" -c 'import os, sys, sysconfig; sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
    die "Python's headers are missing (flash-attn compiles against them): install them, e.g." \
        "sudo apt-get install python$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-dev"

# Where torch's extension builder looks for nvcc: $CUDA_HOME, then PATH, then /usr/local/cuda.
nvcc=${CUDA_HOME:+$CUDA_HOME/bin/nvcc}
nvcc=${nvcc:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x $nvcc ]] ||
    die "no CUDA compiler (nvcc) found: flash-attn compiles here and needs the CUDA $TORCH_CUDA_MAJOR toolkit." \
        "Install it (e.g. sudo apt-get install cuda-toolkit-13-0 from NVIDIA's repository) and set CUDA_HOME, e.g. CUDA_HOME=/usr/local/cuda-13.0"
if [[ ! $("$nvcc" --version) =~ release\ ([0-9]+)\. ]] || ((BASH_REMATCH[1] != TORCH_CUDA_MAJOR)); then
    die "$nvcc is not CUDA $TORCH_CUDA_MAJOR ($("$nvcc" --version | tail -n 2 | head -n 1)); torch $TORCH_VERSION needs" \
        "nvcc $TORCH_CUDA_MAJOR.x to compile flash-attn: point CUDA_HOME at a CUDA $TORCH_CUDA_MAJOR toolkit."
fi
command -v "${CXX:-c++}" >/dev/null 2>&1 ||
    die "no C++ compiler (${CXX:-c++}) for flash-attn's build: install one, e.g. sudo apt-get install g++"

# --- 2. Virtual environment -------------------------------------------------------------------
if [[ ! -x $VENV/bin/python ]]; then
    say "creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip)
"${pip[@]}" install --quiet --upgrade pip

# --- 3. torch, the project with its gpu extra, flash-attn -------------------------------------
say "installing torch $TORCH_VERSION (CUDA $TORCH_CUDA_MAJOR build)"
# "===" matches the version string exactly: "==" would also accept a local CPU-only build such
# as 2.11.0+cpu from a wheel directory in pip's configuration, and pip prefers that one.
"${pip[@]}" install "torch===$TORCH_VERSION"
"$VENV/bin/python" -c "import sys, torch; sys.exit((torch.version.cuda or '').split('.')[0] != '$TORCH_CUDA_MAJOR')" ||
    die "the torch in $VENV is not a CUDA $TORCH_CUDA_MAJOR build" \
        "($("$VENV/bin/python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)')):" \
        "see where pip found it (pip config list), then $VENV/bin/python -m pip uninstall -y torch and rerun."

say "installing sfpo-verl with its gpu extra (verl 0.9.1, vLLM 0.24.0)"
"${pip[@]}" install -e "${PROJECT_ROOT}[gpu]"

say "installing flash-attn $FLASH_ATTN_VERSION without build isolation (compiles against torch $TORCH_VERSION:" \
    "~20 min per GPU architecture on 16 cores; FLASH_ATTN_CUDA_ARCHS=${FLASH_ATTN_CUDA_ARCHS:-80;90;100;120})"
"${pip[@]}" install setuptools wheel packaging psutil ninja
# FORCE_BUILD skips flash-attn's download of a prebuilt wheel: for this release and a CUDA 13
# torch it would guess a CUDA 12 wheel name.
FLASH_ATTENTION_FORCE_BUILD=TRUE "${pip[@]}" install --no-build-isolation "flash-attn==$FLASH_ATTN_VERSION"

# --- 4. Environment check ---------------------------------------------------------------------
say "installed; activate the environment with: source $VENV/bin/activate. Checking it:"
cd "$PROJECT_ROOT"
exec "$VENV/bin/python" -m sfpo_verl.doctor
