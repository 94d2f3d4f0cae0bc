"""Rate-distortion evaluation (``dhvc eval``): sources, DHVC's and the x264/x265 anchors' rate
points, BD-rates, the rd.json file and its plot."""
