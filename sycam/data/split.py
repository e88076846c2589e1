"""A seeded split into synthesis and test samples that keeps images whole and classes balanced.

Samples that come from the same image form a *group* and always go to the same side, so no test image
was seen during synthesis. The group of a sample is its id up to the last ``#`` (ids are
``"<image>#<class>"`` throughout sycam); without ids, samples with identical input tensors form a group.

Groups are stratified by the set of classes they hold: within each stratum, ``round(test_fraction × groups)``
go to the test side (the rounding remainders are shared out across strata so that the total is
``round(test_fraction × all groups)``, and both sides get at least one group). Which groups go where is
decided by a SHA-256 hash of ``(seed, group key)``: the split is deterministic, does not depend on the
order of the samples, and changes completely with the seed.
"""

from __future__ import annotations

import hashlib
import math

from .errors import DataError
from .samples import Samples


def _digest(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def groups_of(samples: Samples) -> list[str]:
    """The group key of every sample (see the module doc)."""
    if samples.ids:
        return [sid.rsplit("#", 1)[0] if "#" in sid else sid for sid in samples.ids]
    images = samples.images.detach().to("cpu").contiguous()
    return [hashlib.sha256(images[i].numpy().tobytes()).hexdigest() for i in range(len(samples))]


def split(samples: Samples, test_fraction: float = 0.5, seed: int = 0) -> tuple[Samples, Samples]:
    """Split ``samples`` into ``(synthesis, test)``.

    Args:
        samples: at least two images' worth of samples.
        test_fraction: share of the images (groups) that go to the test side, strictly between 0 and 1.
        seed: any integer; the same seed gives the same split.

    Returns:
        The two subsets, each in the original order of the samples.
    """
    if isinstance(test_fraction, bool) or not (isinstance(test_fraction, int | float)
                                               and 0.0 < float(test_fraction) < 1.0):
        raise DataError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")
    keys = groups_of(samples)
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    if len(members) < 2:
        raise DataError(f"cannot split {len(samples)} sample(s) from {len(members)} image(s): need at least two images")
    labels = samples.labels.tolist()
    strata: dict[tuple[int, ...], list[str]] = {}
    for key, idx in members.items():
        strata.setdefault(tuple(sorted({labels[i] for i in idx})), []).append(key)
    for groups in strata.values():
        groups.sort(key=lambda g: _digest(seed, g))

    total = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
    quota = {s: test_fraction * len(g) for s, g in strata.items()}
    take = {s: math.floor(q) for s, q in quota.items()}
    order = sorted(strata, key=lambda s: (-(quota[s] - take[s]), _digest(seed, repr(s))))
    remaining = total - sum(take.values())
    for s in order:
        if remaining <= 0:
            break
        if take[s] < len(strata[s]):
            take[s] += 1
            remaining -= 1
    test_groups = {g for s, groups in strata.items() for g in groups[: take[s]]}
    test = sorted(i for g in test_groups for i in members[g])
    test_set = set(test)
    synthesis = [i for i in range(len(samples)) if i not in test_set]
    return samples.subset(synthesis), samples.subset(test)
