import os
import tempfile

from hypothesis import settings

# Tests run verl on the CPU platform this package registers; never on a GPU by accident.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property-based tests: a bounded budget so the suite stays fast, no per-example deadline (a
# loaded machine is slow; the properties check the code's own time limits), no example database
# and the blob that replays a failure. Hypothesis's caches (Unicode tables) go to the temporary
# folder, so a test run writes nothing into the repository.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "sfpo_verl-hypothesis"))
settings.register_profile("sfpo_verl", max_examples=40, deadline=None, database=None, print_blob=True)
settings.load_profile("sfpo_verl")
