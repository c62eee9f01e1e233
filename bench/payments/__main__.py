"""``python -m bench.payments``: see ``bench.payments``."""

from bench.payments.cli import main

raise SystemExit(main())
