"""Build the HTML API reference of sycam from its docstrings with pdoc (see ``docs/api.md``).

Usage: ``python docs/build_api.py [OUT]`` (default ``docs/api/``). Documents the package in this checkout,
not an installed copy, with every public submodule, in Google/reST docstring style with math.
"""

from __future__ import annotations

import argparse
import pkgutil
import re
import sys
import warnings
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "api"
#: reST's "text::" (a colon, then an indented literal block; Markdown already reads the block as code), not a
#: directive such as ".. math::"
_LITERAL_MARKER = re.compile(r"^(?![ \t]*\.\. [\w-]+::)(.*\S)::[ \t]*$", re.MULTILINE)


def public_modules() -> list[str]:
    """``sycam`` and every submodule whose dotted name has no part starting with ``_``.

    Passed to pdoc explicitly: pdoc follows a package's ``__all__`` to find submodules, and ``sycam.__all__``
    lists the API, not the modules.
    """
    import sycam

    names = ["sycam"]
    for info in pkgutil.walk_packages(sycam.__path__, "sycam."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def build(out: Path = DEFAULT_OUT, *, search: bool = True, show_source: bool = True) -> Path:
    """Write the reference into ``out`` (created if missing) and return the path of its ``index.html``.

    ``search`` writes the search index (``search.js``) and ``show_source`` embeds each definition's source;
    both off make the build about twice as fast (the test does that).
    """
    import pdoc
    import pdoc.doc
    import pdoc.docstrings
    import pdoc.render

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import sycam

    # ``sycam`` exports its API lazily (module ``__getattr__``); pdoc reads ``__all__`` names from the module
    # ``__dict__`` only, so resolve them first to document ``sycam.CAM``, ``sycam.synthesize``, ... on the top page.
    for name in sycam.__all__:
        if name not in vars(sycam):
            vars(sycam)[name] = getattr(sycam, name)
    pdoc.render.configure(docformat="google", math=True, search=search, show_source=show_source,
                          footer_text=f"sycam {sycam.__version__}")
    out.mkdir(parents=True, exist_ok=True)
    convert = pdoc.docstrings.convert

    def convert_literal_markers(docstring: str, docformat: str, source_file: Path | None) -> str:
        return convert(_LITERAL_MARKER.sub(r"\1:", docstring), docformat, source_file)

    pdoc.docstrings.convert = convert_literal_markers  # pdoc keeps reST's "Example::" as is
    try:
        return _render(pdoc, out, search)
    finally:
        pdoc.docstrings.convert = convert


def _render(pdoc: ModuleType, out: Path, search: bool) -> Path:
    with warnings.catch_warnings():
        # ``results.SynthesisResults`` inherits its "lambda" keys from a functional-form TypedDict (a keyword
        # cannot be a class-body name); pdoc documents them but cannot find their source line and says so.
        warnings.filterwarnings("ignore", message=r"Cannot determine where sycam\.results\.\w+\.lambda")
        # pdoc.pdoc() would walk each package's ``__all__`` again and re-add modules; render the list instead.
        modules = {name: pdoc.doc.Module.from_name(name) for name in public_modules()}
        for module in modules.values():
            path = out / f"{module.fullname.replace('.', '/')}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(pdoc.render.html_module(module, modules), encoding="utf-8")
        (out / "index.html").write_text(pdoc.render.html_index(modules), encoding="utf-8")
        if search:
            (out / "search.js").write_text(pdoc.render.search_index(modules), encoding="utf-8")
    return out / "index.html"


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python docs/build_api.py [OUT]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=DEFAULT_OUT, help="output folder (default docs/api/)")
    args = parser.parse_args(argv)
    print(build(args.out))


if __name__ == "__main__":
    main()
