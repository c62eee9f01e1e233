"""ML benchmark: online feature lookups through Feast's Python API and through the HTTP endpoint
at a fixed request rate (p50/p99), and the build time of the training set and the other ml
assets over a range of aviation days (the year for the issue's figure).

Targets (issue 4): Python API p99 <= 5 ms; HTTP p99 <= 50 ms at 200 requests/s.

``python -m bench.ml --home H [--start 2013-01-01 --end 2013-12-31] [--rate 200 --seconds 15]``
runs on its own data home (never the user's): it lands and materialises the aviation tables the
ml domain reads when the home does not hold them yet (timed apart), then materialises the ml
group step by step (``--steps`` reruns some), then measures the lookups on the online store it
built. The HTTP run starts the app under uvicorn with ``bench.ml.server`` (the app plus handler
times and its GC pauses), drives it from ``bench.ml.client`` in a process of its own, and
attributes every request over 50 ms to a cause (``bench.ml.stalls``).
"""
