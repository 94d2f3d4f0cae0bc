"""The training pack that ``make data`` builds (``python -m codec.pack.build``)."""
