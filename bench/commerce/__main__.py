"""``python -m bench.commerce``: see ``bench.commerce`` for what it measures."""

from bench.commerce.cli import main

raise SystemExit(main())
