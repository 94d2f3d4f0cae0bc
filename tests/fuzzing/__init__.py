"""Fuzzing parts shared by the hostile-input tests and ``benchmarks/fuzz.py``: the time and
memory guard (``guard``), what became of a case (``outcomes``), the valid inputs
(``fixtures``), the mutators of binary inputs (``mutators``) and of documents (``documents``),
and the categories that put them together (``categories``). Offsets and checksums of the
formats come from the library (``codec.io.wire`` tables in ``codec.stream.bitstream`` and
``netsim.packet``; ``netsim.codecs.slices.data_checksum``)."""
