"""The two domains every part of TwinGAN speaks of, defined once.

A domain has an index (the position of its norm set, its generator, its discriminator, its
data stream) and a letter (how files, indexes, configs and the command line name it: `--a`,
`a2b`, `a-3.faiss`). Everything else derives from these two tables.
"""

from __future__ import annotations

from twingan.errors import UserError

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


def refuse_character_for(direction: str, what: str = "a character") -> None:
    """A character code shapes anime output only: the one refusal of it for a direction that makes
    photos, for every caller (files, videos, the server, the Python API)."""
    if direction in DIRECTIONS and DIRECTIONS[direction][1] != DOMAIN_B:
        raise UserError(f"{what} shapes anime output, and direction {direction} makes photos")
