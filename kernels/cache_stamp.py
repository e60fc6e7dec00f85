"""Numba's on-disk cache of the kernels, invalidated when any kernel source changes.

Numba keys a cached function by the modification time and size of the one file that
defines it. A kernel here inlines code from several files (``fields``, ``stepping``,
``controller``, ``fnptr``, ...), so after an update that changed only one of those (a
``git pull``, an edited checkout) Numba would load the old machine code for the unchanged
file's kernels: a stale kernel, silently. The locators registered here stamp every kernel
with a hash of the contents of all the package's source files instead, so any change
recompiles every kernel, once.

The registration uses Numba's cache-locator list
(``numba.core.caching.CacheImpl._locator_classes``), an internal of Numba; ``setup.cfg``
pins the Numba range it was checked against and ``tests/kernels/test_cache_stamp.py``
exercises it. It must run before any kernel module is imported (``kernels/__init__.py``
does it), since Numba picks a function's locator when the function is decorated.
"""

import hashlib
import os

from numba.core import caching

KERNEL_DIRECTORY = os.path.dirname(os.path.abspath(__file__))


def sources_stamp(directory=KERNEL_DIRECTORY):
    """A hash of the names and contents of the ``.py`` files in ``directory``."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            digest.update(name.encode())
            with open(os.path.join(directory, name), "rb") as source:
                digest.update(source.read())
    return "paramest-kernels-" + digest.hexdigest()


_STAMP = sources_stamp()


def _in_kernels(py_file):
    try:
        return os.path.dirname(os.path.abspath(py_file)) == KERNEL_DIRECTORY
    except (TypeError, ValueError):  # pragma: no cover - not a file path
        return False


def _stamped(base):
    """``base`` (one of Numba's locators) for kernel files only, stamped with the hash of
    all kernel sources."""

    class KernelSourcesLocator(base):
        def get_source_stamp(self):
            return _STAMP

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _in_kernels(py_file):
                return None
            return super().from_function(py_func, py_file)

    KernelSourcesLocator.__name__ = KernelSourcesLocator.__qualname__ = (
        "KernelSources" + base.__name__.lstrip("_")
    )
    return KernelSourcesLocator


def register():
    """Put the stamped locators first in Numba's list (once per process)."""
    classes = caching.CacheImpl._locator_classes
    if any(getattr(cls, "_paramest_kernels", False) for cls in classes):
        return
    stamped = []
    for base in list(classes):
        if getattr(base, "from_function", None) is None:  # pragma: no cover
            continue
        cls = _stamped(base)
        cls._paramest_kernels = True
        stamped.append(cls)
    classes[:0] = stamped
