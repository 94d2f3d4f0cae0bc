"""Bitstreams: the per-frame encoder and decoder, the wire format of frames and ``.dhvc`` files,
the file operations behind ``dhvc encode``/``decode``/``info``, and the codec benchmark."""
