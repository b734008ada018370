# Sourced by every recipe: checks on the recipe's inputs, and the launch of the trainer.
# The checks run before anything starts (no Ray, no GPU), so a wrong path costs seconds.

# The paper's six evaluation sets, as written by scripts/prepare_data.py (in this order).
PAPER_BENCHMARKS=(math500 aime24 aime25 amc23 minerva olympiadbench)

recipe_error() {
    echo "recipe error: $*" >&2
    exit 2
}

# paper_val_files DIR: the six prepared evaluation files under DIR, space-separated.
paper_val_files() {
    local dir=$1 benchmark files=()
    for benchmark in "${PAPER_BENCHMARKS[@]}"; do
        files+=("$dir/$benchmark.parquet")
    done
    echo "${files[*]}"
}

# require_algo VAR: $VAR must name an arm the entry point knows.
require_algo() {
    case "${!1:-}" in
        grpo | sfpo) ;;
        *) recipe_error "$1='${!1:-}' must be grpo (the baseline arm) or sfpo" ;;
    esac
}

# require_model_dir VAR: $VAR must be a local Hugging Face model directory.
require_model_dir() {
    local value=${!1:-}
    if [[ -z "$value" || ! -f "$value/config.json" ]]; then
        recipe_error "$1='$value' is not a model directory (no config.json in it). Set $1 to a local copy," \
            "e.g. huggingface-cli download <repo> --local-dir <dir> on a machine with hub access."
    fi
}

# require_files VAR: every path in $VAR (space-separated) must be an existing file.
require_files() {
    local value=${!1:-} path
    [[ -n "$value" ]] || recipe_error "$1 is empty"
    for path in $value; do
        [[ -f "$path" ]] || recipe_error "$1: '$path' does not exist (set DATA_DIR, or $1 itself)." \
            "Prepare the data with python scripts/prepare_data.py --out-dir <DATA_DIR> ... (see recipes/README.md)."
    done
}

# hydra_list WORDS...: a Hydra list literal, ['a','b'].
hydra_list() {
    local out="" item
    for item in "$@"; do
        out+="${out:+,}'$item'"
    done
    echo "[$out]"
}

# sfpo_launch RUN_DIR OVERRIDE...: start the trainer with these Hydra overrides, verl's file
# logger writing to RUN_DIR/metrics_<start time>.jsonl (a file per launch: verl truncates
# its log file on start, and a resumed run must not erase the first launch's metrics).
# With SFPO_PRINT_OVERRIDES=1 it only prints the overrides, one per line: the recipe test
# composes them with Hydra to catch a misspelled or removed key without launching anything.
sfpo_launch() {
    local run_dir=$1
    shift
    if [[ "${SFPO_PRINT_OVERRIDES:-0}" == 1 ]]; then
        printf '%s\n' "$@"
        return 0
    fi
    mkdir -p "$run_dir"
    export VERL_FILE_LOGGER_PATH=${VERL_FILE_LOGGER_PATH:-$run_dir/metrics_$(date +%Y%m%d_%H%M%S).jsonl}
    exec "${PYTHON:-python3}" -m sfpo_verl.main "$@"
}
