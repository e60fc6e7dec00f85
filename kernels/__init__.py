"""Compute layer of paramest: every Numba-compiled function lives here.

Nothing in this package is user-facing and nothing here imports from ``paramest``; the
front end validates arguments, then calls these kernels with plain arrays and scalars.
"""

from . import cache_stamp

# before any kernel module is imported: their on-disk cache follows all kernel sources
cache_stamp.register()
