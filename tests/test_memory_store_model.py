"""The memory store's versions and size limit against a plain model of them (the
store before it kept a running total: every put rescanned every step's versions).
Random puts, gets, peeks and drops, real checkpoints and numpy arrays; the store
must keep the very same versions, in the same order, as the model."""

from __future__ import annotations

import random
from collections import OrderedDict

import numpy as np
import pytest

from nbsteps.stores import Checkpoint, MemoryStore
from nbsteps.stores.memory import approx_size


class Model:
    """Each step's versions, least recently used first; the versions other than a
    step's latest are sized once, when a put first finds them older, and dropped
    (steps in the order they were first put, least recently used first in a step)
    while their bytes exceed max_size."""

    def __init__(self, versions: int, max_size: "int | None") -> None:
        self.versions, self.max_size = versions, max_size
        self.data: dict[str, OrderedDict] = {}
        self.sizes: dict = {}

    def get(self, step, fp):
        versions = self.data.get(step)
        if not versions:
            return None
        if fp is None:
            return next(reversed(versions.values()))
        if fp in versions:
            versions.move_to_end(fp)
        return versions.get(fp)

    def put(self, cp) -> None:
        versions = self.data.setdefault(cp.step, OrderedDict())
        versions.pop(cp.fingerprint, None)
        versions[cp.fingerprint] = cp
        self.sizes.pop((cp.step, cp.fingerprint), None)
        while len(versions) > self.versions:
            self.sizes.pop((cp.step, versions.popitem(last=False)[0]), None)
        if self.max_size is None or len(versions) < 2:
            return
        older = [(s, fp) for s, v in self.data.items() for fp in list(v)[:-1]]
        for key in older:
            if key not in self.sizes:
                self.sizes[key] = approx_size(self.data[key[0]][key[1]])
        total = sum(self.sizes[k] for k in older)
        for step, fp in older:
            if total <= self.max_size:
                break
            if self.sizes[(step, fp)]:
                del self.data[step][fp]
                total -= self.sizes.pop((step, fp))

    def drop(self, step) -> None:
        for fp in self.data.pop(step, {}):
            self.sizes.pop((step, fp), None)


@pytest.mark.parametrize("seed", range(6))
def test_memory_store_keeps_what_the_model_keeps(seed):
    r = random.Random(seed)
    for _ in range(60):
        versions, max_size = r.choice([1, 2, 3]), r.choice([None, 1, 150, 600, 2000])
        store, model = MemoryStore(versions, max_size), Model(versions, max_size)
        steps = [f"s{i}" for i in range(r.choice([1, 3, 8]))]
        for _ in range(r.choice([10, 60])):
            step, fp, k = r.choice(steps), f"f{r.randrange(4)}", r.random()
            if k < 0.55:  # 0 to 800 bytes, or values that count for nothing
                n = r.choice([0, 1, 5, 10, 20, 100])
                cp = Checkpoint(step, fp, {"a": np.zeros(n) if n else [n], "b": "t" * r.randrange(3)})
                store.put(cp)
                model.put(cp)
            elif k < 0.85:
                fp = None if r.random() < 0.2 else fp
                assert store.get(step, fp) is model.get(step, fp)
            elif k < 0.9:
                store.drop(step)
                model.drop(step)
            else:
                assert store.peek(step, fp) is (model.data.get(step) or {}).get(fp)
            kept = {s: list(model.data.get(s, ())) for s in steps}
            assert {s: store.fingerprints(s) for s in steps} == kept
            assert store.steps() == list(model.data)
