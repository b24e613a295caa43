"""An LRU cache bounded in bytes, for everything keyed by what a request controls.

A cache bounded in entries only is bounded in memory only as far as its keys are short: 20,000
distinct 12 KB user-agents held ~240 MB. `ByteLRU` counts each entry's key and value (an
estimate that errs high: strings shared with other objects are counted again) plus a fixed
overhead, evicts the least recently used entries until the total fits its budget, and never
holds an entry larger than the budget. get and put are O(1) (an OrderedDict). Not locked:
veil uses them from one thread, its event loop's (the HTTP endpoints and the writer's
pipeline), or in a writer process of its own.

What these caches hold (raw user-agents, addresses, headers) stays in this process's memory:
never on disk, never in a log line. `disabled()` switches every cache off at once, for tests
that prove the caches change no result.
"""

import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar, overload

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

# Per entry, beyond key and value: the dict slot and ordered-list node (~100 bytes in CPython
# 3.11) and the (value, weight) pair kept (~85), rounded up.
ENTRY_OVERHEAD = 192

_getsizeof = sys.getsizeof


def size_of(obj: object) -> int:
    """Bytes of `obj` and, recursively, of what a tuple or frozenset holds; an object shared
    with others is counted every time it appears."""
    if isinstance(obj, tuple | frozenset):
        return _getsizeof(obj) + sum(size_of(item) for item in obj)
    return _getsizeof(obj)


def weigh_entry(key: object, value: object) -> int:
    return ENTRY_OVERHEAD + size_of(key) + size_of(value)


_ALL: "weakref.WeakSet[ByteLRU[Hashable, object]]" = weakref.WeakSet()


class ByteLRU(Generic[K, V]):
    """Least recently used entries go first once key and value sizes pass `budget` bytes."""

    __slots__ = ("__weakref__", "_budget", "_data", "_weigh", "budget", "nbytes")

    def __init__(self, budget: int, weigh: Callable[[K, V], int] = weigh_entry) -> None:
        self.budget = self._budget = budget  # _budget: the configured one, while disabled()
        self.nbytes = 0
        self._weigh = weigh
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()  # value and its weight
        _ALL.add(self)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: K) -> bool:
        return key in self._data

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        data = self._data
        found = data.get(key)  # not try/except: raising KeyError costs more than a miss
        if found is None:
            return default
        data.move_to_end(key)
        return found[0]

    def put(self, key: K, value: V, size: int | None = None) -> None:
        """Keep `value` under `key`, evicting the least recently used entries to make room;
        an entry larger than the whole budget is not kept (nor does it evict anything).
        `size`, when the caller knows it, is what the cache's weigher would say."""
        if size is None:
            size = self._weigh(key, value)
        if size > self.budget:
            return
        data = self._data
        old = data.pop(key, None)
        nbytes = self.nbytes + size - (old[1] if old else 0)
        data[key] = (value, size)
        while nbytes > self.budget and data:
            nbytes -= data.popitem(last=False)[1][1]
        self.nbytes = nbytes

    def oldest_first(self) -> list[K]:
        """Keys from least to most recently used."""
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()
        self.nbytes = 0


def clear_all() -> None:
    for cache in list(_ALL):
        cache.clear()


@contextmanager
def disabled() -> Iterator[None]:
    """Every ByteLRU empty and keeping nothing until the block ends: each lookup computes."""
    caches = list(_ALL)
    for cache in caches:
        cache.clear()
        cache.budget = 0
    try:
        yield
    finally:
        for cache in caches:
            cache.budget = cache._budget
