"""Synthesis: the grammar, the learner (enumeration with a bank), the oracles, the constraints and the OGIS
search.

:func:`synthesize` is the entry point (:class:`SynthesisConfig` its settings, in :mod:`sycam.synth.config`;
:class:`SynthesisResult` what it returns, in :mod:`sycam.synth.result`); :class:`Search` runs the same steps one at
a time. :mod:`sycam.synth.search` explains the steps and the winner rule,
:mod:`sycam.synth.constraints` the constraint language.
"""

from .config import SynthesisConfig
from .constraints import DEFAULT_GUARDS, Constraint, default_constraints, parse_constraint
from .errors import SynthesisError
from .grammar import Grammar, GrammarError
from .learner import Learner
from .oracles import CorrectnessOracle, EquivalenceOracle
from .result import SynthesisResult
from .search import Candidate, Search, synthesize

__all__ = [
    "DEFAULT_GUARDS",
    "Candidate",
    "Constraint",
    "CorrectnessOracle",
    "EquivalenceOracle",
    "Grammar",
    "GrammarError",
    "Learner",
    "Search",
    "SynthesisConfig",
    "SynthesisError",
    "SynthesisResult",
    "default_constraints",
    "parse_constraint",
    "synthesize",
]
