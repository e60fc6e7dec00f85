"""The kernels' on-disk cache follows every kernel source file, not only the defining one."""

import shutil

from numba.core.registry import CPUDispatcher

import paramest  # noqa: F401 - imports the kernels
from paramest.kernels import (
    cache_stamp,
    controller,
    derivatives,
    explicit,
    fields,
    rosenbrock,
    stepping,
    validation,
)


def _cached_dispatchers():
    for module in (controller, derivatives, explicit, fields, rosenbrock, stepping, validation):
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher) and value._cache is not None:
                cache = getattr(value._cache, "_impl", None)
                if cache is not None:
                    yield value, cache.locator


def test_every_cached_kernel_is_stamped_with_all_kernel_sources():
    found = list(_cached_dispatchers())
    assert len(found) >= 10
    for dispatcher, locator in found:
        assert getattr(type(locator), "_paramest_kernels", False), dispatcher
        assert locator.get_source_stamp() == cache_stamp.sources_stamp()


def test_the_stamp_changes_with_any_kernel_file(tmp_path):
    copy = tmp_path / "kernels"
    shutil.copytree(
        cache_stamp.KERNEL_DIRECTORY, copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    before = cache_stamp.sources_stamp(copy)
    assert before == cache_stamp.sources_stamp()
    fields_source = copy / "fields.py"
    fields_source.write_text(fields_source.read_text() + "\n# edited\n")
    assert cache_stamp.sources_stamp(copy) != before


def test_other_files_keep_numba_s_own_locators(tmp_path):
    import importlib.util
    import sys

    module_file = tmp_path / "user_module_for_stamp.py"
    module_file.write_text(
        "from numba import njit\n\n@njit(cache=True)\ndef twice(x):\n    return 2 * x\n"
    )
    spec = importlib.util.spec_from_file_location("user_module_for_stamp", module_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules["user_module_for_stamp"] = module
    try:
        spec.loader.exec_module(module)
        locator = module.twice._cache._impl.locator
        assert not getattr(type(locator), "_paramest_kernels", False)
        assert module.twice(3) == 6
    finally:
        del sys.modules["user_module_for_stamp"]
