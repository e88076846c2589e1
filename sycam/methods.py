"""The well-known CAM methods, stored as data: named expressions of the language (spec §4).

Channel-weight form (the expression is a channel vector α): :math:`L = \\sum_k \\alpha_k A_k`.
Pixel-weight form (the expression is a map α): :math:`L = \\sum_k \\alpha_k \\odot A_k`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .expr import ExpressionError, Node, parse


@dataclass(frozen=True)
class Method:
    """A named CAM method: its key, its expression in the language, a display title and a citation (the paper,
    with an arXiv or DOI link).

    >>> from sycam.methods import METHODS
    >>> METHODS["gradcam"].expression, METHODS["gradcam"].title
    ('mean(G)', 'Grad-CAM')
    """

    name: str
    expression: str
    title: str
    reference: str

    @property
    def node(self) -> Node:
        """The parsed :attr:`expression`."""
        return parse(self.expression)


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("gradcam", "mean(G)", "Grad-CAM", "Selvaraju et al., ICCV 2017 — https://arxiv.org/abs/1610.02391"),
        Method(
            "gradcam++",
            "sum(relu(G) * sq(G) / (2 * sq(G) + sum(A) * cube(G) + 1e-06))",
            "Grad-CAM++",
            "Chattopadhay et al., WACV 2018 — https://arxiv.org/abs/1710.11063 (pytorch-grad-cam's denominator "
            "2G² + ΣA·G³ + 1e-6: the ε matters, since G² is often below 1e-5)",
        ),
        Method("xgradcam", "sum(G * A) / sum(A)", "XGrad-CAM", "Fu et al., BMVC 2020 — https://arxiv.org/abs/2008.02312"),
        Method("scorecam", "softmax(S)", "Score-CAM", "Wang et al., CVPRW 2020 — https://arxiv.org/abs/1910.01279"),
        Method("ablationcam", "D", "Ablation-CAM",
               "Desai & Ramaswamy, WACV 2020 — https://doi.org/10.1109/WACV45572.2020.9093360"),
        Method("hirescam", "G", "HiResCAM", "Draelos & Carin, 2020 — https://arxiv.org/abs/2011.08891 (pixel form)"),
        Method("layercam", "relu(G)", "LayerCAM",
               "Jiang et al., TIP 2021 — https://doi.org/10.1109/TIP.2021.3089943 (pixel form)"),
        Method("eigencam", "E", "EigenCAM",
               "Muhammad & Yeasin, IJCNN 2020 — https://arxiv.org/abs/2008.00299 (first principal component of A)"),
        Method("eigengradcam", "EG", "EigenGradCAM",
               "Muhammad & Yeasin, IJCNN 2020 — https://arxiv.org/abs/2008.00299 (the EigenCAM idea on A ⊙ G, as "
               "pytorch-grad-cam)"),
    ]
}
"""The built-in methods by key (``gradcam``, ``gradcam++``, ``xgradcam``, ``scorecam``, ``ablationcam``, ``hirescam``,
``layercam``, ``eigencam``, ``eigengradcam``), in display order. Multi-layer LayerCAM names its second layer:
``layercam@LAYER`` (:func:`multi_layer_layercam`)."""

MULTI_LAYER = Method("layercam@LAYER", "cmean(relu(G), relu(G@LAYER))", "multi-layer LayerCAM",
                     "Jiang et al., TIP 2021 (fusion of the target layer and LAYER, as pytorch-grad-cam averages them)")
"""Multi-layer LayerCAM as listed (``LAYER`` stands for a module path)."""


def multi_layer_layercam(layer: str) -> str:
    r"""The expression of LayerCAM fused over the target layer and ``layer``: each layer's map
    :math:`\mathrm{norm}(\mathrm{relu}(\sum_k \mathrm{relu}(G_k) A_k))`, their mean on the finer grid, normalized
    (pytorch-grad-cam's multi-layer aggregation, exact when both layers share a grid).

    >>> multi_layer_layercam("blocks.5")
    'cmean(cam(relu(G)), cam(relu(G@blocks.5)))'
    """
    return str(parse(MULTI_LAYER.expression.replace("LAYER", layer)))

AT_LAYER = " at "
"""How the key of a classic method computed at another layer reads: ``gradcam at blocks.6``."""


def method_at_layer(name: str, layer: str) -> tuple[str, Node] | None:
    """``(key, expression)`` of classic method ``name`` computed entirely at ``layer`` instead of the target layer:
    its expression with every terminal moved there (Grad-CAM ``mean(G)`` → ``mean(G@blocks.6)``); None for methods
    whose terminals exist at the target layer only (Score-CAM's S, Ablation-CAM's D). A search over terminals at
    other layers scores these beside the classic methods, so that a classic method at another layer is never
    reported as a synthesized win.

    >>> method_at_layer("gradcam", "blocks.6")
    ('gradcam at blocks.6', Call(op='mean', args=(Terminal(name='G@blocks.6'),)))
    >>> method_at_layer("ablationcam", "blocks.6") is None
    True
    """
    from .expr import Call, Terminal
    from .expr.ast import LAYERED

    def move(node: Node) -> Node | None:
        if isinstance(node, Terminal):
            if "@" in node.name:
                return node
            return Terminal(f"{node.name}@{layer}") if node.name in LAYERED else None
        if isinstance(node, Call):
            args = [move(a) for a in node.args]
            return None if any(a is None for a in args) else Call(node.op, tuple(args))  # type: ignore[arg-type]
        return node

    moved = move(METHODS[name].node)
    return None if moved is None else (f"{name}{AT_LAYER}{layer}", moved)


def method_title(key: str) -> str:
    """The display title of a method key: ``Grad-CAM``, or ``Grad-CAM at blocks.6`` (:func:`method_at_layer`)."""
    name, at, layer = key.partition(AT_LAYER)
    title = METHODS[name].title if name in METHODS else key
    return f"{title} at {layer}" if at else title


_ALIASES = {"gradcampp": "gradcam++", "gradcamplusplus": "gradcam++", "gradcam_pp": "gradcam++"}


def _key(name: str) -> str:
    k = name.strip().lower().replace("-", "").replace(" ", "")
    return _ALIASES.get(k, k)


def resolve_method(spec: str | Node) -> tuple[str, Node]:
    """``(label, expression)`` for a method name (case-insensitive; ``grad-cam`` = ``gradcam``) or an
    expression text. Raises :class:`~sycam.expr.ExpressionError` for a bad expression.

    The label is the method key for a known method and the canonical text for an expression::

        >>> resolve_method("Grad-CAM")[0], resolve_method("mean(G)*2")[0]
        ('gradcam', 'mean(G) * 2')
    """
    if isinstance(spec, Node):
        return str(spec), spec
    if not isinstance(spec, str) or not spec.strip():
        raise ExpressionError(f"empty method: give a name ({', '.join(METHODS)}) or an expression", str(spec), 0)
    key = _key(spec)
    if key in METHODS:
        return METHODS[key].name, METHODS[key].node
    head, at, layer = spec.strip().partition("@")
    if at and _key(head) == "layercam" and "(" not in layer:
        node = parse(multi_layer_layercam(layer.strip()))
        return f"layercam@{layer.strip()}", node
    try:
        node = parse(spec)
    except ExpressionError as exc:
        if exc.reason.startswith("unknown name") and "(" not in spec \
                and spec.strip().replace("-", "").replace("+", "").replace("_", "").isalnum():
            raise ExpressionError(
                f"unknown method {spec.strip()!r} (methods: {', '.join(METHODS)}) and not an expression: {exc.reason}",
                exc.text,
                exc.position,
            ) from None
        raise
    return str(node), node
