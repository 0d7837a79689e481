"""Twin-GAN (Li 2018): one shared encoder/generator whose normalisation switches per domain."""
