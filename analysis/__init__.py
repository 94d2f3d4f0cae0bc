"""Analysis of the testbed's traces (DESIGN 5): load -> DataFrame -> metrics -> figure.

* ``analysis.io``: ``load_frames``, ``load_packets``, ``load_summary``, ``load_run``, ``load_rd``;
* ``analysis.metrics``: per-run summaries (``run_metrics``), desync events and recovery,
  per-sweep tables (``summary_table``) and the tables the figures draw;
* ``analysis.figures``: plot-only functions for paper Figs. 11, 13, 21, 22 and RD curves;
* ``analysis.make_figures``: the command line that writes the figures (``make figures``).

Sweeps run in ``netsim`` (``netsim.sweep``, ``netsim sweep``); analysis reads their table.
"""
