# Sourced by every recipe: checks on the recipe's inputs, the Hydra overrides all recipes share,
# and the launch of the trainer. The checks run before anything starts (no Ray, no GPU), so a
# wrong path costs seconds.

recipe_error() {
    echo "recipe error: $*" >&2
    exit 2
}

# paper_benchmarks: the paper's six evaluation sets, space-separated, as sfpo_verl lists them
# (sfpo_verl.paper.numbers.BENCHMARKS, the one list; scripts/prepare_data.py writes a parquet
# for each). Asked of $PYTHON, the interpreter that will run the trainer.
paper_benchmarks() {
    local python=${PYTHON:-python3} code='from sfpo_verl.paper.numbers import BENCHMARKS; print(*BENCHMARKS)' output cause
    if ! output=$("$python" -c "$code" 2>/dev/null); then
        cause=$("$python" -c "$code" 2>&1 >/dev/null) || true # again, for the error's last line
        recipe_error "PYTHON='$python' cannot read the paper's benchmark list from sfpo_verl.paper.numbers" \
            "(${cause##*$'\n'}). Set PYTHON to the interpreter sfpo_verl is installed in, or VAL_FILES to the validation files."
    fi
    echo "$output"
}

# paper_val_files DIR: the six prepared evaluation files under DIR, space-separated.
paper_val_files() {
    local dir=$1 benchmarks benchmark files=()
    benchmarks=$(paper_benchmarks) || exit # recipe_error has left only this command substitution
    for benchmark in $benchmarks; do
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

# check_inputs: stops with a recipe error naming the variable unless ALGO is an arm, MODEL_PATH
# a model directory, and TRAIN_FILE and VAL_FILES existing files. An empty VAL_FILES becomes the
# paper's six benchmarks under DATA_DIR, after the other checks: the list needs Python.
check_inputs() {
    require_algo ALGO
    require_model_dir MODEL_PATH
    require_files TRAIN_FILE
    if [[ -z "${VAL_FILES:-}" ]]; then
        VAL_FILES=$(paper_val_files "$DATA_DIR") || exit
    fi
    require_files VAL_FILES
}

# paper_overrides [OVERRIDE...]: sets the array PAPER_OVERRIDES to the Hydra overrides every recipe
# shares (the paper's settings; recipes/README.md says where each comes from), filled in from the
# variables the recipe sets: its inputs and names (ALGO, MODEL_PATH, TRAIN_FILE, VAL_FILES,
# PROJECT_NAME, EXPERIMENT_NAME, RUN_DIR, LOGGERS, NNODES, GPUS_PER_NODE, CHECKPOINTS_KEPT), the
# model's settings (MAX_PROMPT_LENGTH, MAX_RESPONSE_LENGTH, ALPHA) and its memory settings
# (ROLLOUT_TP, GPU_MEMORY_UTILIZATION, MAX_TOKENS_PER_GPU). Each OVERRIDE, the recipe's own
# (the DAPO recipe's), replaces the shared one with the same key, written the same way, where it
# stands, or else goes after the last override of its section (algorithm, data, reward, ...; at
# the end if the section is new): one line per key, grouped by section, whatever a recipe adds.
#
# A bash function, not a Hydra config per recipe: a recipe stays one script in the shape of
# verl's examples, every setting a plain key=value override that SFPO_PRINT_OVERRIDES=1 prints
# and the command line overrides; the paths and names come from environment variables with
# defaults the script computes, which a YAML file could reach only through interpolations; and
# the trainer's config (sfpo_trainer.yaml) stays free of the paper's settings.
paper_overrides() {
    # shellcheck disable=SC2086  # VAL_FILES is a space-separated list
    PAPER_OVERRIDES=(
        algorithm.name="$ALGO"
        algorithm.adv_estimator=grpo
        algorithm.use_kl_in_reward=False
        algorithm.sfpo.inner_steps=3
        algorithm.sfpo.alpha="$ALPHA"
        algorithm.sfpo.alpha_schedule=constant
        algorithm.sfpo.entropy_switch.enable=True
        algorithm.sfpo.entropy_switch.window=30
        algorithm.sfpo.entropy_switch.threshold=1.0
        data.train_files="$TRAIN_FILE"
        data.val_files="$(hydra_list $VAL_FILES)"
        data.train_batch_size=256
        data.max_prompt_length="$MAX_PROMPT_LENGTH"
        data.max_response_length="$MAX_RESPONSE_LENGTH"
        data.filter_overlong_prompts=True
        data.truncation=error
        actor_rollout_ref.model.path="$MODEL_PATH"
        actor_rollout_ref.model.use_remove_padding=True
        actor_rollout_ref.model.enable_gradient_checkpointing=True
        actor_rollout_ref.actor.strategy=fsdp2
        actor_rollout_ref.actor.optim.lr=1e-6
        actor_rollout_ref.actor.optim.lr_scheduler_type=constant
        actor_rollout_ref.actor.optim.weight_decay=0.01
        actor_rollout_ref.actor.optim.clip_grad=1.0
        actor_rollout_ref.actor.ppo_mini_batch_size=64
        actor_rollout_ref.actor.ppo_epochs=1
        actor_rollout_ref.actor.use_dynamic_bsz=True
        actor_rollout_ref.actor.ppo_max_token_len_per_gpu="$MAX_TOKENS_PER_GPU"
        actor_rollout_ref.actor.clip_ratio_low=0.2
        actor_rollout_ref.actor.clip_ratio_high=0.2
        actor_rollout_ref.actor.loss_agg_mode=token-mean
        actor_rollout_ref.actor.entropy_coeff=0.001
        actor_rollout_ref.actor.use_kl_loss=False
        actor_rollout_ref.rollout.name=vllm
        actor_rollout_ref.rollout.n=8
        actor_rollout_ref.rollout.temperature=1.0
        actor_rollout_ref.rollout.top_p=1.0
        actor_rollout_ref.rollout.tensor_model_parallel_size="$ROLLOUT_TP"
        actor_rollout_ref.rollout.gpu_memory_utilization="$GPU_MEMORY_UTILIZATION"
        actor_rollout_ref.rollout.val_kwargs.n=4
        actor_rollout_ref.rollout.val_kwargs.do_sample=True
        actor_rollout_ref.rollout.val_kwargs.temperature=1.0
        actor_rollout_ref.rollout.val_kwargs.top_p=0.7
        reward.custom_reward_function.path=pkg://sfpo_verl.paper.reward.math_reward
        reward.custom_reward_function.name=compute_score
        +reward.custom_reward_function.reward_kwargs.format_score=0.1
        trainer.logger="$LOGGERS"
        trainer.project_name="$PROJECT_NAME"
        trainer.experiment_name="$EXPERIMENT_NAME"
        trainer.nnodes="$NNODES"
        trainer.n_gpus_per_node="$GPUS_PER_NODE"
        trainer.total_training_steps=400
        trainer.test_freq=5
        trainer.save_freq=5
        trainer.val_before_train=True
        trainer.max_actor_ckpt_to_keep="$CHECKPOINTS_KEPT"
        trainer.default_local_dir="$RUN_DIR/checkpoints"
        trainer.validation_data_dir="$RUN_DIR/val_generations"
        hydra.run.dir="$RUN_DIR"
    )
    local override key section shared i at
    for override in "$@"; do
        key=${override%%=*}
        section=${key#+}
        section=${section%%.*}
        at=$((${#PAPER_OVERRIDES[@]} - 1))
        for i in "${!PAPER_OVERRIDES[@]}"; do
            shared=${PAPER_OVERRIDES[i]%%=*}
            if [[ "$shared" == "$key" ]]; then
                PAPER_OVERRIDES[i]=$override
                continue 2
            fi
            shared=${shared#+}
            if [[ "${shared%%.*}" == "$section" ]]; then
                at=$i
            fi
        done
        PAPER_OVERRIDES=("${PAPER_OVERRIDES[@]:0:at+1}" "$override" "${PAPER_OVERRIDES[@]:at+1}")
    done
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
