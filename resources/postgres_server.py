"""The embedded PostgreSQL server behind ``resources.postgres``, started and stopped by the
platform itself: the CDC source, tests and benchmarks.

Why our own server rather than a system service: the platform is offline-first and embedded, so
the source database lives under the data home (``<home>/postgres``) like everything else, on a
non-default port, with its unix socket inside its own directory (no TCP listener at all) and
``wal_level=logical`` so a replication slot can decode it.

``start`` and ``stop`` are idempotent: starting a running server is a no-op, stopping a stopped
one too. The superuser password is written to a temporary 0600 file for ``initdb`` and removed at
once; it never appears in a command line, a log or an error message.

PostgreSQL refuses to run as root. When this process is root, the server runs as an unprivileged
operating-system user (``postgres`` by default) that must be able to reach the data directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from data_products.lib.keys import validate_identifier

PG_BIN_CANDIDATES = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
# A unix socket path is limited to 107 bytes (sun_path); ".s.PGSQL.<port>" takes 16 of them.
_MAX_SOCKET_DIR = 90

SERVER_SETTINGS: dict[str, str] = {
    "wal_level": "logical",
    "max_replication_slots": "8",
    "max_wal_senders": "8",
    "listen_addresses": "''",
    "fsync": "off",  # a local replica of test/demo data; durability of the host is not needed
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "max_wal_size": "2GB",
    "logging_collector": "off",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


class PostgresServerError(RuntimeError):
    """The server could not be initialised, started or stopped (the message says which step)."""


def pg_bin_dir() -> Path:
    """The PostgreSQL server binaries: ``$PG_BIN`` or the Debian package locations."""
    configured = os.environ.get("PG_BIN")
    for candidate in ([configured] if configured else []) + list(PG_BIN_CANDIDATES):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise PostgresServerError(
        "no PostgreSQL server binaries (initdb, pg_ctl): install postgresql-15 or set PG_BIN"
    )


def free_port() -> int:
    """A TCP port nobody listens on now (the socket file name uses the port number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """One cluster directory, its port and its superuser.

    ``data_dir`` holds the cluster (``pgdata/``), the socket and the server log.
    """

    data_dir: Path
    port: int = 54329
    user: str = "data_products"
    database: str = "inventory"
    os_user: str = "postgres"

    def __post_init__(self) -> None:
        validate_identifier(self.user, what="PostgreSQL user")
        validate_identifier(self.database, what="PostgreSQL database")
        if len(str(self.socket_dir)) > _MAX_SOCKET_DIR:
            raise PostgresServerError(
                f"socket directory {self.socket_dir} is longer than {_MAX_SOCKET_DIR} "
                "characters; unix sockets cannot live there: use a shorter data home"
            )

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.resolve()

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def conninfo(self, password: str, database: str | None = None) -> str:
        """A libpq connection string over the unix socket (no TCP)."""
        return (
            f"host={self.socket_dir} port={self.port} user={self.user} "
            f"dbname={database or self.database} password={_quote(password)}"
        )

    def uri(self) -> str:
        """The server's address for lineage: no credentials, host as libpq would name it."""
        return f"postgres://localhost:{self.port}/{self.database}"

    # -- lifecycle ------------------------------------------------------------------------------

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run(["pg_ctl", "status", "-D", str(self.pgdata)], check=False)
        return result.returncode == 0

    def start(self, password: str) -> None:
        """Initialise the cluster on first use, then start it; a running server is left alone."""
        if not password:
            raise PostgresServerError("an empty superuser password is not allowed")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._hand_over_to_os_user(self.data_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(password)
        if self.is_running():
            return
        options = f"-p {self.port} -k {self.socket_dir}"
        result = self._run(
            [
                "pg_ctl",
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-o",
                options,
            ],
            check=False,
        )
        if result.returncode != 0:
            raise PostgresServerError(
                f"PostgreSQL did not start on port {self.port} (data {self.pgdata}): "
                f"{result.stderr.strip() or result.stdout.strip()}; see {self.log_file}"
            )
        self._ensure_database(password)

    def stop(self) -> None:
        """Fast shutdown (clients disconnected, nothing lost); a stopped server is left alone."""
        if not self.is_running():
            return
        result = self._run(["pg_ctl", "stop", "-w", "-m", "fast", "-D", str(self.pgdata)])
        if result.returncode != 0:
            raise PostgresServerError(f"PostgreSQL at {self.pgdata} did not stop: {result.stderr}")

    # -- internals ------------------------------------------------------------------------------

    def _initdb(self, password: str) -> None:
        fd, pwfile = tempfile.mkstemp(prefix="pwfile-", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(password + "\n")
            self._hand_over_to_os_user(Path(pwfile))
            result = self._run(
                [
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "-U",
                    self.user,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                check=False,
            )
        finally:
            Path(pwfile).unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresServerError(f"initdb failed for {self.pgdata}: {result.stderr.strip()}")
        settings = "\n".join(f"{key} = {value}" for key, value in SERVER_SETTINGS.items())
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"\n# data-products CDC source\n{settings}\n")

    def _ensure_database(self, password: str) -> None:
        import psycopg

        with psycopg.connect(self.conninfo(password, "postgres"), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not exists:
                # validated identifier: safe to interpolate
                conn.execute(f"CREATE DATABASE {self.database}")

    def _as_os_user(self) -> str | None:
        return self.os_user if os.geteuid() == 0 else None

    def _hand_over_to_os_user(self, path: Path) -> None:
        user = self._as_os_user()
        if user is None:
            return
        try:
            entry = pwd.getpwnam(user)
        except KeyError as exc:
            raise PostgresServerError(
                f"running as root: PostgreSQL needs an unprivileged OS user, and {user!r} "
                "does not exist"
            ) from exc
        os.chown(path, entry.pw_uid, entry.pw_gid)
        for parent in path.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise PostgresServerError(
                    f"{parent} is not traversable by OS user {user!r}, which runs PostgreSQL "
                    f"(we are root): put the server's data directory elsewhere"
                )

    def _run(self, argv: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(pg_bin_dir() / argv[0]), *argv[1:]]
        user = self._as_os_user()
        result = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
            argv,
            capture_output=True,
            text=True,
            user=user,
            cwd=self.data_dir if self.data_dir.exists() else None,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise PostgresServerError(f"{Path(argv[0]).name} failed: {result.stderr.strip()}")
        return result


def _quote(value: str) -> str:
    """A libpq conninfo value, quoted (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
