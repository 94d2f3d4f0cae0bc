"""The DHVC network: its configuration and presets, its layers, the model itself and its
checkpoints (load and save)."""
