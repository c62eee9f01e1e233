"""``python -m bench.aviation``: see ``bench.aviation`` for what it measures."""

from bench.aviation.cli import main

raise SystemExit(main())
