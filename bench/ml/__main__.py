"""``python -m bench.ml``: see ``bench.ml``."""

from bench.ml.run import main

raise SystemExit(main())
