"""Driving the mesh from the command line and from tests: in-process slice runs judged by
their checks (``runs``), one sensor tick and its runs (``runs.tick_and_run``) and JUnit reports
(``junit``). Not a platform mechanism (assets never need it to run), so not in ``lib``; the
domains' demo runners use it, hence it sits below ``assets`` in the import layers."""
