"""Entropy coding of the latents: the Gaussian entropy model and its coding table
(``gaussian``), and the helper processes that may code a scale's slices (``slice_pool``)."""
