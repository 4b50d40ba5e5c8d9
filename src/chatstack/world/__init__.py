"""The synthetic world: a seeded fictional world whose every fact is known.

Because the ground truth is known, every lesson of the stack can be measured on a CPU:
knowledge stored in parameters (QA about people read in pretraining), hallucination
(questions about people never read), working memory (the same questions answered from a
search result), arithmetic and counting, and verifiable rewards for RL.
"""
from chatstack.world.generator import ATTRIBUTES, Person, World, WorldConfig, build_world

__all__ = ["ATTRIBUTES", "Person", "World", "WorldConfig", "build_world"]
