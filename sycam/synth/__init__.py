"""Synthesis: the grammar, the learner (enumeration with a bank), the oracles and the OGIS search."""

from .grammar import Grammar, GrammarError
from .learner import Learner
from .oracles import CorrectnessOracle, EquivalenceOracle
from .search import SynthesisConfig, SynthesisError, SynthesisResult, synthesize

__all__ = [
    "CorrectnessOracle",
    "EquivalenceOracle",
    "Grammar",
    "GrammarError",
    "Learner",
    "SynthesisConfig",
    "SynthesisError",
    "SynthesisResult",
    "synthesize",
]
