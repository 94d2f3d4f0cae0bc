"""netsim: a SimPy testbed that carries DHVC 2.0 per-scale bitstreams through a lossy network.

Entry points: ``netsim.scenario.load_scenario`` (validated ``Scenario``),
``netsim.runner.run_scenario`` (one run with the real codec, writes the traces) and
``netsim.simulation.simulate`` (the network alone, with any frame encoder and decoder).
The ``netsim`` command (``netsim.cli``) wraps them.
"""
