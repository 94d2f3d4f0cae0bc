"""x264 and x265 through PyAV as real-time codecs, one picture at a time (netsim's baselines)."""
