"""``make install``'s last step: the local Dagster instance under the data home, and the embedded
PostgreSQL's password file (see ``resources.postgres.ensure_password``), so ``make dev`` can
export it before the UI starts."""

from __future__ import annotations

from data_products.lib.instance import ensure_dagster_home
from resources.postgres import ensure_password


def main() -> None:
    ensure_password()
    print(ensure_dagster_home())


if __name__ == "__main__":
    main()
