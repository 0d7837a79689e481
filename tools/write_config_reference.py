"""Rewrite docs/config.md, the configuration reference, from the typed schema in twingan/config.py.

Run it after adding or changing a config key, its default, range or docstring:
tests/test_config_reference.py fails until docs/config.md matches the schema again.

    python tools/write_config_reference.py
"""

from __future__ import annotations

from twingan.cli.config_reference import REFERENCE_PATH, write_reference

if __name__ == "__main__":
    write_reference(REFERENCE_PATH)
    print(f"wrote {REFERENCE_PATH}")
