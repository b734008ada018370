import os

# Tests run verl on the CPU platform this package registers; never on a GPU by accident.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
