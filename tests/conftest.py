import os
import sys
from pathlib import Path

# Tests run verl on the CPU platform this package registers; never on a GPU by accident.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))
