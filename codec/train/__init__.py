"""Training: the training loop, its data sources and the clips made on the training device."""
