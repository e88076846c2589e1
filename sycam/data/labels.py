"""Class labels: an index, an ImageNet synset (``n01440764``) or a class name → class index.

Names match case-insensitively and exactly (after trimming spaces) against the model's class names
and, for ImageNet-1k, also against the WordNet synonyms of each class (timm's descriptions, e.g.
``"tiger shark"`` or ``"Tinca tinca"``). A name that fits more than one class — ``"crane"`` (the bird
134 and the machine 517), ``"maillot"`` (638, 639), ``"cardigan"`` (the corgi 264 and the sweater
474) — is an error that lists the candidates, never a silent guess.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache

from .errors import DataError

SYNSET = re.compile(r"^n\d{8}$")


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (from torchvision's weight metadata; offline)."""
    from torchvision.models import ResNet50_Weights

    return list(ResNet50_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_synsets() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids (``n01440764``, …) in index order (shipped with timm; offline)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    return [info.index_to_label_name(i) for i in range(1000)]


@lru_cache(maxsize=1)
def _imagenet_tables() -> tuple[tuple[str, ...], tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """ImageNet-1k ``(names, synsets, synonyms)`` in index order (torchvision names, timm synsets)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    synonyms = tuple(
        tuple(s.strip() for s in info.index_to_description(i).split(",") if s.strip()) for i in range(1000)
    )
    return tuple(imagenet_classes()), tuple(imagenet_synsets()), synonyms


class LabelResolver:
    """Turns the labels users write into class indices of a model.

    Args:
        classes: the model's class names in index order; ``None`` for the ImageNet-1k classes. Synsets
            and WordNet synonyms are understood only when ``classes`` are the ImageNet-1k classes.
    """

    def __init__(self, classes: Sequence[str] | None = None) -> None:
        names, synsets, synonyms = _imagenet_tables()
        if classes is None:
            classes = names
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self.is_imagenet = self.classes == names
        self._synsets: dict[str, int] = {s: i for i, s in enumerate(synsets)} if self.is_imagenet else {}
        self._synset_of: tuple[str, ...] = synsets if self.is_imagenet else ()
        index: dict[str, set[int]] = {}
        for i, name in enumerate(self.classes):
            index.setdefault(name.strip().casefold(), set()).add(i)
        if self.is_imagenet:
            for i, words in enumerate(synonyms):
                for word in words:
                    index.setdefault(word.casefold(), set()).add(i)
        self._names = index

    def __len__(self) -> int:
        return len(self.classes)

    def describe(self, index: int) -> str:
        """``"285 Egyptian cat (n02124075)"``: an index with its name (and synset for ImageNet)."""
        synset = f" ({self._synset_of[index]})" if self._synset_of else ""
        return f"{index} {self.classes[index]}{synset}"

    def resolve(self, value: object, where: str) -> int:
        """The class index of ``value`` (int, numeric string, synset or name); ``where`` prefixes errors."""
        n = len(self.classes)
        if isinstance(value, bool) or value is None:
            raise DataError(f"{where}: label must be a class index, synset or class name, got {value!r}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            if not 0 <= value < n:
                raise DataError(f"{where}: class index {value} is out of range (0–{n - 1})")
            return value
        if not isinstance(value, str):
            raise DataError(f"{where}: label must be a class index, synset or class name, got {value!r}")
        text = value.strip()
        if not text:
            raise DataError(f"{where}: the label is empty")
        if re.fullmatch(r"[+-]?\d+", text):
            return self.resolve(int(text), where)
        if SYNSET.match(text):
            if not self.is_imagenet:
                raise DataError(f"{where}: synset {text!r} given, but the model's classes are not ImageNet-1k")
            if text not in self._synsets:
                raise DataError(f"{where}: unknown synset {text!r} (not one of the 1000 ImageNet-1k synsets)")
            return self._synsets[text]
        found = self._names.get(text.casefold())
        if found is None:
            close = difflib.get_close_matches(text.casefold(), list(self._names), n=3, cutoff=0.75)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise DataError(f"{where}: unknown label {text!r} (not a class index, synset or class name{hint})")
        if len(found) > 1:
            options = ", ".join(self.describe(i) for i in sorted(found))
            raise DataError(
                f"{where}: label {text!r} is ambiguous, it names {len(found)} classes: {options}; "
                f"give the index or synset instead"
            )
        return next(iter(found))


class Labeler:
    """How a data set's labels become classes: an optional fixed ``label`` for everything, an optional
    ``label_map`` from the names in the files to classes, then :class:`LabelResolver`.

    Args:
        resolver: resolves indices, synsets and names.
        label: when given, the class of every sample, whatever the files say (for a folder of one class, or
            VOC names that are not ImageNet classes).
        label_map: names used in the files → class (index, synset or name), matched case-insensitively;
            names not in the map are resolved as usual.
        unknown: ``"error"`` (default) or ``"skip"``: what to do with a label that resolves to no class.
            Skipped names are counted in :attr:`skipped`.
    """

    def __init__(
        self,
        resolver: LabelResolver,
        label: int | str | None = None,
        label_map: Mapping[str, int | str] | None = None,
        unknown: str = "error",
    ) -> None:
        if unknown not in ("error", "skip"):
            raise DataError(f"unknown labels: the policy must be 'error' or 'skip', got {unknown!r}")
        self.resolver = resolver
        self.fixed = None if label is None else resolver.resolve(label, "--label")
        self.mapping: dict[str, int] = {}
        for key, value in (label_map or {}).items():
            self.mapping[str(key).strip().casefold()] = resolver.resolve(value, f"label map entry {key!r}")
        self.unknown = unknown
        self.skipped: Counter[str] = Counter()

    def __call__(self, value: object, where: str) -> int | None:
        """The class of ``value`` found at ``where``; ``None`` when it is unknown and skipped."""
        if self.fixed is not None:
            return self.fixed
        if isinstance(value, str) and value.strip().casefold() in self.mapping:
            return self.mapping[value.strip().casefold()]
        if self.unknown == "skip":
            try:
                return self.resolver.resolve(value, where)
            except DataError:
                self.skipped[str(value).strip()] += 1
                return None
        return self.resolver.resolve(value, where)

    def skipped_summary(self) -> str:
        """``"'person' ×12, 'chair' ×3"``: the skipped names, most frequent first."""
        return ", ".join(f"{name!r} ×{n}" for name, n in self.skipped.most_common())
