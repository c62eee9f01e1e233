"""``python -m bench.cdc [--rows N] [--seconds S]``: see ``bench.cdc``."""

from bench.cdc.run import main

raise SystemExit(main())
