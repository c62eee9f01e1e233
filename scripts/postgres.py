"""``python scripts/postgres.py start|stop|status``: the embedded PostgreSQL CDC source.

Uses the same resource as the assets (``resources.postgres``), so it starts the server the
sensor and the demo use: under ``$DATA_PRODUCTS_HOME/postgres``, password from
``$DATA_PRODUCTS_POSTGRES_PASSWORD`` (or the one the demo generated under the data home).
"""

from __future__ import annotations

import argparse
import sys

from assets.cdc.demo import ensure_password
from resources.postgres import postgres_resource


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=("start", "stop", "status"))
    action = parser.parse_args(argv).action
    ensure_password()
    postgres = postgres_resource().process_config_and_initialize()
    server = postgres.server()
    if action == "start":
        server.start(postgres.password)
    elif action == "stop":
        server.stop()
    running = server.is_running()
    print(f"postgres {'running' if running else 'stopped'}: {server.uri()} ({server.data_dir})")
    return 0 if running or action == "stop" else 1


if __name__ == "__main__":
    sys.exit(main())
