"""The urbanization scenario engine (see README.md).

Importing ``sim`` before NumPy (as ``python -m sim`` and the other entry points do) turns off
NumPy's request for transparent huge pages on large arrays (``NUMPY_MADVISE_HUGEPAGE=0``)
unless the environment sets it: on this project's 2-core VM the first touch of a huge page
costs several times more than of the same memory in small pages (a fresh 360 MB array: 1.05 s
against 0.20 s), and a sweep or a large geography writes gigabytes of fresh memory (measured:
the 64-job sweep with full outputs 4.0-4.7 s against 5.9-7.0 s, China's counties 4.0-4.3 s
against 5.7-5.9 s, three runs each). ``NUMPY_MADVISE_HUGEPAGE=1`` restores NumPy's default
(child processes inherit the setting).
"""

from __future__ import annotations

import os

os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

__version__ = "0.1.0"
