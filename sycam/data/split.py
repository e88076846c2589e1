"""Seeded splits that keep every *source* on one side: ``split`` (synthesis, test) and ``split_three``
(synthesis, validation, test).

**Sources.** Every sample comes from sources, named ``"kind:name"``: always its image (``"image:<id up to the
last #>"``; without ids, the SHA-256 of its input tensor), and whatever :attr:`Samples.sources` adds — the
demo names the object photos (``"photo:skimage/chelsea"``) and textures (``"texture:skimage/brick"``) it
composites. Two samples that share a source are *connected*; the connected components are the units that
are split, so no image, object photo or texture is on two sides and a held-out score measures new objects,
not new layouts of the same photos.

**Where the data do not allow it.** Images are never relaxed: a data set of one image cannot be split. When
all sources together leave fewer components than there are sides, the least important kind is dropped from
the grouping and tried again (kinds in the order ``image``, ``photo``, then others by first appearance,
``texture`` last), with a :class:`DataWarning`; :func:`shared_sources` then says what two splits share, so
a report can print it.

**Assignment.** Components are stratified by the set of classes they hold. Within each stratum
``round(fraction × components)`` go to a side (the rounding remainders are shared out across strata so the
total is ``round(fraction × all components)``; every side gets at least one component). Which components go
where is decided by a SHA-256 hash of ``(seed, component key)``, where the key of a component is its
smallest image id: the split is deterministic, independent of the order of the samples, and changes
completely with the seed. For samples whose only source is their image, ``split`` is the same as before
sources existed.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence

from .errors import DataError, DataWarning
from .samples import Samples

KIND_ORDER = ("image", "photo")
"""kinds of source in the order they are kept when the data do not allow keeping all (``image`` never drops)"""
LAST_KINDS = ("texture",)
"""kinds relaxed first"""


def _digest(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}\x00{key}".encode()).hexdigest()


def groups_of(samples: Samples) -> list[str]:
    """The image of every sample: its id up to the last ``#``, or without ids a hash of its input tensor."""
    if samples.ids:
        return [sid.rsplit("#", 1)[0] if "#" in sid else sid for sid in samples.ids]
    images = samples.images.detach().to("cpu").contiguous()
    return [hashlib.sha256(images[i].numpy().tobytes()).hexdigest() for i in range(len(samples))]


def sources_of(samples: Samples) -> list[tuple[str, ...]]:
    """Every sample's sources: ``"image:<image>"`` first, then those of :attr:`Samples.sources`."""
    out = []
    for i, image in enumerate(groups_of(samples)):
        extra = samples.sources[i] if samples.sources else ()
        own = f"image:{image}"
        out.append((own, *(s for s in extra if s != own)))
    return out


def shared_sources(a: Samples, b: Samples) -> list[str]:
    """The sources (``"photo:skimage/chelsea"``, ``"image:cat.jpg"``, …) that samples of ``a`` and ``b`` share,
    sorted; ``[]`` when the two are disjoint, as :func:`split` makes them wherever the data allow.

    Example::

        synthesis, test = split(samples, 0.5)
        assert shared_sources(synthesis, test) == []
    """
    left = {s for srcs in sources_of(a) for s in srcs}
    return sorted(left.intersection(s for srcs in sources_of(b) for s in srcs))


GROUP_KINDS = ("group", "photo")
"""kinds of source the clustered bootstrap prefers, in order (then any other kind, ``texture`` last, then the
image)"""


def bootstrap_groups(samples: Samples) -> tuple[list[str], str]:
    """``(group per sample, grouping)``: the clusters a bootstrap of these samples resamples
    (:func:`sycam.stats.paired_bootstrap_ci` ``groups=``), and which kind of source made them.

    The kind is the first present among a manifest's ``group`` column, the object photo (``photo``), any other
    kind, and the texture; a sample's group is the set of its sources of that kind (a composite of two photos is
    a group of its own: the two photos' groups would otherwise merge into one), and a sample with no source of
    that kind is grouped by its image. Without any source beyond the image, each image is its own group (two
    samples of one image, two targets, are one group). ``grouping`` reads like ``"photo (3 groups)"``.

    Example::

        groups, grouping = bootstrap_groups(test)   # the demo's test split: (..., "photo (3 groups)")
    """
    sources = sources_of(samples)
    images = groups_of(samples)
    kinds = [k for k in _kinds(sources) if k != "image"]
    order = [k for k in GROUP_KINDS if k in kinds]
    order += [k for k in kinds if k not in order and k not in LAST_KINDS] + [k for k in LAST_KINDS if k in kinds]
    kind = order[0] if order else "image"
    out = []
    for image, srcs in zip(images, sources, strict=True):
        mine = sorted(s for s in srcs if _kind(s) == kind)
        out.append("+".join(mine) if mine else f"image:{image}")
    n = len(set(out))
    return out, f"{kind} ({n} group{'s' if n != 1 else ''})"


def _kind(source: str) -> str:
    return source.split(":", 1)[0] if ":" in source else ""


def _kinds(sources: list[tuple[str, ...]]) -> list[str]:
    """Kinds present, most important first."""
    seen: list[str] = []
    for srcs in sources:
        for s in srcs:
            if _kind(s) not in seen:
                seen.append(_kind(s))
    first = [k for k in KIND_ORDER if k in seen]
    last = [k for k in LAST_KINDS if k in seen and k not in first]
    return first + [k for k in seen if k not in first and k not in last] + last


def _components(images: list[str], sources: list[tuple[str, ...]], kinds: set[str]) -> dict[str, list[int]]:
    """Connected components of the samples under the sources of ``kinds``, keyed by their smallest image."""
    parent = list(range(len(images)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, srcs in enumerate(sources):
        for s in srcs:
            if _kind(s) not in kinds:
                continue
            j = owner.setdefault(s, i)
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    members: dict[int, list[int]] = {}
    for i in range(len(images)):
        members.setdefault(find(i), []).append(i)
    return {min(images[i] for i in idx): idx for idx in members.values()}


def _grouped(samples: Samples, sides: int, what: str) -> dict[str, list[int]]:
    """Components with as many kinds of source kept as leave at least ``sides`` components."""
    images = groups_of(samples)
    sources = sources_of(samples)
    kinds = _kinds(sources)
    n_images = len(set(images))
    if n_images < sides:
        raise DataError(f"cannot split {len(samples)} sample(s) from {n_images} image(s) into {what}: "
                        f"need at least {sides} images")
    keep = len(kinds)
    while True:
        members = _components(images, sources, set(kinds[:keep]))
        if len(members) >= sides or keep == 1:
            break
        keep -= 1
    if keep < len(kinds):
        warnings.warn(f"the samples' {', '.join(kinds[keep:])} sources connect them into fewer than {sides} "
                      f"groups: the {what} may share them (see shared_sources)", DataWarning, stacklevel=4)
    return members


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0.0 < float(value) < 1.0):
        raise DataError(f"{name} must be strictly between 0 and 1, got {value!r}")
    return float(value)


def _strata(samples: Samples, members: dict[str, list[int]], seed: int) -> dict[tuple[int, ...], list[str]]:
    labels = samples.labels.tolist()
    strata: dict[tuple[int, ...], list[str]] = {}
    for key, idx in members.items():
        strata.setdefault(tuple(sorted({labels[i] for i in idx})), []).append(key)
    for groups in strata.values():
        groups.sort(key=lambda g: _digest(seed, g))
    return strata


def _allocate(strata: dict[tuple[int, ...], list[str]], free: dict[tuple[int, ...], int], fraction: float,
              total: int, seed: int, salt: str) -> dict[tuple[int, ...], int]:
    """How many of each stratum's ``free`` components a side takes: ``floor(fraction × stratum)`` each, the
    rest of ``total`` to the largest remainders (ties by hash)."""
    quota = {s: fraction * len(g) for s, g in strata.items()}
    take = {s: min(math.floor(q), free[s]) for s, q in quota.items()}
    order = sorted(strata, key=lambda s: (-(quota[s] - take[s]), _digest(seed, salt + repr(s))))
    remaining = total - sum(take.values())
    while remaining > 0:
        moved = False
        for s in order:
            if remaining <= 0:
                break
            if take[s] < free[s]:
                take[s] += 1
                remaining -= 1
                moved = True
        if not moved:
            break
    return take


def _assign(samples: Samples, fractions: Sequence[float], seed: int, what: str) -> list[list[int]]:
    """Positions of the samples on each side: side 0 gets the rest, side k the share ``fractions[k-1]``."""
    sides = len(fractions) + 1
    members = _grouped(samples, sides, what)
    strata = _strata(samples, members, seed)
    n = len(members)
    totals = [min(max(round(f * n), 1), n - (sides - 1)) for f in fractions]
    while sum(totals) > n - 1:  # keep at least one component for side 0
        k = max(range(len(totals)), key=lambda j: totals[j])
        totals[k] -= 1
    used = {s: 0 for s in strata}
    chosen: list[list[int]] = []
    for k, (fraction, total) in enumerate(zip(fractions, totals, strict=True)):
        free = {s: len(g) - used[s] for s, g in strata.items()}
        take = _allocate(strata, free, fraction, total, seed, "" if k == 0 else f"side{k}")
        picked = {g for s, groups in strata.items() for g in groups[used[s]: used[s] + take[s]]}
        for s in strata:
            used[s] += take[s]
        chosen.append(sorted(i for g in picked for i in members[g]))
    taken = {i for side in chosen for i in side}
    return [[i for i in range(len(samples)) if i not in taken], *chosen]


def split(samples: Samples, test_fraction: float = 0.5, seed: int = 0) -> tuple[Samples, Samples]:
    """Split ``samples`` into ``(synthesis, test)`` with no source (image, object photo, texture) on both sides.

    Args:
        samples: samples from at least two images.
        test_fraction: share of the groups (connected sources; see the module doc) that go to the test side,
            strictly between 0 and 1.
        seed: any integer; the same seed gives the same split.

    Returns:
        The two subsets, each in the original order of the samples.

    Example::

        synthesis, test = split(load_data("demo", preprocess), 0.5, seed=0)
        shared_sources(synthesis, test)   # [] : no image, photo or texture on both sides
    """
    fraction = _check_fraction("test_fraction", test_fraction)
    synthesis, test = _assign(samples, [fraction], seed, "synthesis and test")
    return samples.subset(synthesis), samples.subset(test)


def split_three(samples: Samples, validation_fraction: float = 0.25, test_fraction: float = 0.25,
                seed: int = 0) -> tuple[Samples, Samples, Samples]:
    """Split ``samples`` into ``(synthesis, validation, test)``, grouped and stratified like :func:`split`.

    The test side is drawn first (``round(test_fraction × groups)``), then the validation side from the rest
    (``round(validation_fraction × groups)``); synthesis gets what is left. Each side gets at least one group.

    Args:
        samples: samples from at least three images.
        validation_fraction, test_fraction: shares of the groups, each strictly between 0 and 1, summing to
            less than 1.
        seed: any integer; the same seed gives the same split.

    Example::

        synthesis, validation, test = split_three(samples, 0.25, 0.25, seed=0)
    """
    v = _check_fraction("validation_fraction", validation_fraction)
    t = _check_fraction("test_fraction", test_fraction)
    if v + t >= 1.0:
        raise DataError(f"validation_fraction + test_fraction must be below 1, got {v} + {t}")
    synthesis, test, validation = _assign(samples, [t, v], seed, "synthesis, validation and test")
    return samples.subset(synthesis), samples.subset(validation), samples.subset(test)
