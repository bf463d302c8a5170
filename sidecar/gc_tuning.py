"""Garbage-collector settings for the server process, applied once it has started.

With CPython's defaults, garbage collection cost a proxied request about 14 µs of CPU
(measured in the server under 64 concurrent searches: a young-generation collection every
~40 requests, and a full collection of ~23 ms over the ~80,000 objects that start-up leaves
behind every few thousand requests). Collections were frequent because CPython collects the
young generation after only 700 net allocations of container objects, so the objects of the
requests in flight were caught alive, promoted, and then paid for again in the older
generations. Two settings:

- :func:`gc.freeze` after start-up: what start-up built (modules, the app, its clients) lives
  as long as the process, and no collection walks it again;
- a young-generation threshold of :data:`GEN0_THRESHOLD` (CPython's default is 700, 2,000 from
  3.13): most of a request's objects are freed by reference counting before a collection
  sees them.

Only cyclic garbage waits longer for its collection: at most that many container objects.
``scripts/bench`` figure 2 measures the pass-through with these settings.
"""

from __future__ import annotations

import gc

GEN0_THRESHOLD = 50_000


def settle() -> None:
    """Apply the settings (call once start-up is complete)."""
    gc.collect()
    gc.freeze()
    gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, GEN0_THRESHOLD), gen1, gen2)
