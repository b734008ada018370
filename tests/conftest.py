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


def pytest_addoption(parser):
    parser.addoption(
        "--phase", choices=("all", "fast", "slow"), default="all",
        help="fast: only the tests not marked slow; slow: only the trainer launches (marked slow). "
             "scripts/test.sh runs the two phases one after the other; unlike -m, this composes with a -m of your own.")


def pytest_collection_modifyitems(config, items):
    """Keep only the asked `--phase`; on verl 0.8.x, skip the tests marked `verl09` (they need the
    v1 trainer, the CPU platform or the hf rollout), each with the reason its marker gives."""
    import pytest

    from sfpo_verl.core import verl_seams

    phase = config.getoption("phase")
    if phase != "all":
        in_phase = {item: (item.get_closest_marker("slow") is not None) == (phase == "slow") for item in items}
        config.hook.pytest_deselected(items=[item for item in items if not in_phase[item]])
        items[:] = [item for item in items if in_phase[item]]
    if not verl_seams.uses_v0_trainer():
        return
    installed = verl_seams.installed_verl_version()
    for item in items:
        marker = item.get_closest_marker("verl09")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"needs verl 0.9.x (installed: verl {installed}){': ' + why if why else ''}"))
