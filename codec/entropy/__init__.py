"""Entropy coding of the latents: the Gaussian entropy model and its coding tables."""
