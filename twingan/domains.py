"""The two domains every part of TwinGAN speaks of, defined once.

A domain has an index (the position of its norm set, its generator, its discriminator, its
data stream) and a letter (how files, indexes, configs and the command line name it: `--a`,
`a2b`, `a-3.faiss`). Everything else derives from these two tables.
"""

from __future__ import annotations

DOMAIN_A = 0
"""Human photos."""
DOMAIN_B = 1
"""Anime; the domain that receives the character condition."""
DOMAINS = (DOMAIN_A, DOMAIN_B)
NUM_DOMAINS = len(DOMAINS)
DOMAIN_LETTERS = ("a", "b")
"""Letter of each domain, by index."""
DOMAIN_BY_LETTER = {letter: index for index, letter in enumerate(DOMAIN_LETTERS)}
DIRECTIONS: dict[str, tuple[int, int]] = {"a2b": (DOMAIN_A, DOMAIN_B), "b2a": (DOMAIN_B, DOMAIN_A)}
"""Direction name -> (source domain, target domain)."""
DIRECTION_NAMES = {"a2b": "photo -> anime", "b2a": "anime -> photo"}
"""How reports name each direction."""
