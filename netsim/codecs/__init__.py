"""Codecs under test behind one adapter interface, found by kind in one registry (DESIGN 4b).

* ``base``: ``CodecAdapter`` (what the sender and the receiver call), ``ShownPicture`` (what
  every codec's decoder shows), ``EchoRecovery`` (the answer to feedback), ``TimedCodec`` (the
  one timing wrapper) and ``LoadedCodec`` (a codec set up for a run);
* ``registry``: the codec kinds and their ``CodecEntry`` (setup, scenario checks);
* ``dhvc``: the neural codec (scale packets, ``netsim.packetizer``);
* ``h26x`` and ``slices``: x264 and x265 (slice packets).

The built-in adapters are imported when the registry is first asked for their kind, so that
importing this package loads no codec.
"""

from netsim.codecs.base import (
    Assembled,
    CodecAdapter,
    EchoRecovery,
    LoadedCodec,
    ShownPicture,
    TimedCodec,
)
from netsim.codecs.registry import (
    DEFAULT_CODEC,
    DHVC,
    CodecEntry,
    builtin_codec_kinds,
    codec_entry,
    codec_kinds,
    register_codec,
    registered_codec,
)

__all__ = [
    "DEFAULT_CODEC",
    "DHVC",
    "Assembled",
    "CodecAdapter",
    "CodecEntry",
    "EchoRecovery",
    "LoadedCodec",
    "ShownPicture",
    "TimedCodec",
    "builtin_codec_kinds",
    "codec_entry",
    "codec_kinds",
    "register_codec",
    "registered_codec",
]
