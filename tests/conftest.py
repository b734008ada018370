import os

# Tests run verl on the CPU platform this package registers; never on a GPU by accident.
os.environ.setdefault("VERL_PLATFORM", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    """On verl 0.8.x, skip the tests marked `verl09` (they need the v1 trainer, the CPU platform
    or the hf rollout), each with the reason its marker gives."""
    import pytest

    from sfpo_verl.core import verl_seams

    if not verl_seams.uses_v0_trainer():
        return
    installed = verl_seams.installed_verl_version()
    for item in items:
        marker = item.get_closest_marker("verl09")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(reason=f"needs verl 0.9.x (installed: verl {installed}){': ' + why if why else ''}"))
