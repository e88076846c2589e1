"""Synthesis: the grammar, the learner (enumeration with a bank), the oracles, the constraints and the OGIS
search."""

from .constraints import DEFAULT_GUARDS, Constraint, default_constraints, parse_constraint
from .errors import SynthesisError
from .grammar import Grammar, GrammarError
from .learner import Learner
from .oracles import CorrectnessOracle, EquivalenceOracle
from .search import Candidate, Search, SynthesisConfig, SynthesisResult, synthesize

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
