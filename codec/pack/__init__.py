"""The training pack: where it lies and how it is read (``load``, the runtime side), and the
builder that ``make data`` runs (``python -m codec.pack``): its sources (``catalogue``),
fetching them (``fetch``) and packing them small (``build``)."""
