import os

from hypothesis import settings

# Tests run verl on the CPU platform this package registers; never on a GPU by accident.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Property-based tests: a bounded budget so the suite stays fast, no per-example deadline (a
# loaded machine is slow; the properties check the code's own time limits), no example database
# (a test run writes nothing into the repository) and the blob that replays a failure.
settings.register_profile("sfpo_verl", max_examples=40, deadline=None, database=None, print_blob=True)
settings.load_profile("sfpo_verl")
