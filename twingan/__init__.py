"""TwinGAN: unpaired human <-> anime portrait translation with one shared encoder/generator."""

__version__ = "0.1.0"
