"""Analysis of the testbed's traces (DESIGN 5): load -> DataFrame -> metrics -> figure.

* ``analysis.io``: ``load_frames``, ``load_packets``, ``load_summary``, ``load_run``, ``load_rd``;
* ``analysis.metrics``: per-run summaries (``run_metrics``), desync events and recovery,
  per-sweep tables (``summary_table``) and the tables the figures draw;
* ``analysis.figures``: plot-only functions for paper Figs. 11, 13, 21, 22 and RD curves;
* ``analysis.sweep``: grids of scenario variants x seeds on dask.distributed;
* ``analysis.make_figures`` and ``analysis.cli``: the command lines.
"""
