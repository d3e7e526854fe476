"""PostgreSQL clusters a test starts and stops itself: a primary that commits synchronously to a
streaming standby, which the test can then promote (tests/store/test_failover.py).

The server binaries are found with ``pg_config --bindir`` or under /usr/lib/postgresql/*/bin
(:func:`server_binaries_missing` says why not). initdb, pg_ctl and postgres refuse to run as
root: as root, they run as the ``postgres`` system user, in a temporary directory it owns.
Each cluster listens on 127.0.0.1 only, on a port of its own, with no Unix socket, trust auth.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from tests.support.waiting import wait_until
from tests.support.workers import free_port

SUPERUSER = "postgres"
STANDBY_NAME = "standby1"
#: Cluster settings for both: small, fast, and streaming replication that waits for the standby.
#: ``fsync = off``: the test kills the server, never the machine, so written WAL survives anyway;
#: what counts is that a commit returns only once the standby has it.
SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "120",
    "shared_buffers": "32MB",
    "fsync": "off",
    "wal_level": "replica",
    "max_wal_senders": "4",
    "wal_keep_size": "128MB",
    "hot_standby": "on",
    "synchronous_commit": "on",
    "logging_collector": "off",
}


def _bindir_candidates() -> list[Path]:
    found: list[Path] = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
        found.append(Path(out.stdout.strip()))
    versioned = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin") if Path(p).parent.name.isdigit()]
    found.extend(sorted(versioned, key=lambda bindir: int(bindir.parent.name), reverse=True))
    return found


def server_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl, pg_basebackup and postgres, or None."""
    needed = ("initdb", "pg_ctl", "pg_basebackup", "postgres")
    for bindir in _bindir_candidates():
        if all(os.access(bindir / name, os.X_OK) for name in needed):
            return bindir
    return None


def server_binaries_missing() -> str | None:
    """Why clusters cannot be started here, or None."""
    if server_bindir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup): install Debian's postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root and there is no 'postgres' user to run the PostgreSQL server as"
    return None


class PgCluster:
    """One cluster (a data directory and its server) on ``port``."""

    def __init__(self, bindir: Path, data_dir: Path, port: int) -> None:
        self.bindir = bindir
        self.data_dir = data_dir
        self.port = port
        self.log_file = data_dir.parent / f"{data_dir.name}.log"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}/{database}"

    def run(self, tool: str, *args: str, timeout: float = 120) -> str:
        """Run one of the server's tools, as ``postgres`` when we are root; its output."""
        done = subprocess.run(
            [str(self.bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            **_as_server_user(),
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}"
            )
        return done.stdout

    def configure(self, settings: dict[str, str]) -> None:
        """Settings for the next start (postgresql.auto.conf is read last, so these win)."""
        lines = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (self.data_dir / "postgresql.auto.conf").open("a", encoding="utf-8") as conf:
            conf.write(lines)

    def start(self) -> None:
        self.run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir), "-l", str(self.log_file))

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data_dir))

    def promote(self) -> None:
        """Promote this standby and wait until it takes writes."""
        self.run("pg_ctl", "promote", "-w", "-t", "60", "-D", str(self.data_dir))

    def running(self) -> bool:
        done = subprocess.run(
            [str(self.bindir / "pg_ctl"), "status", "-D", str(self.data_dir)],
            capture_output=True,
            **_as_server_user(),
        )
        return done.returncode == 0

    def query(self, sql: str, database: str = "postgres", **params: Any) -> list[Any]:
        engine = create_engine(self.url(database), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                result = conn.execute(text(sql), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            engine.dispose()

    def log_tail(self, size: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(encoding="utf-8", errors="replace")[-size:]
        return ""


class ReplicatedPair:
    """A primary and a synchronous standby (``application_name`` standby1), in one temporary
    directory; :meth:`close` stops both and removes everything, whatever state they are in."""

    def __init__(self, database: str = "intaked") -> None:
        bindir = server_bindir()
        assert bindir is not None, server_binaries_missing()
        self.database = database
        self.root = Path(tempfile.mkdtemp(prefix="intaked-pg-"))
        _hand_to_server_user(self.root)
        self.primary = PgCluster(bindir, self.root / "primary", free_port())
        self.standby = PgCluster(bindir, self.root / "standby", free_port())

    def start(self) -> ReplicatedPair:
        """initdb the primary, start it, copy it to the standby with pg_basebackup, start that,
        and wait until the primary reports the standby as synchronous."""
        primary, standby = self.primary, self.standby
        primary.run("initdb", "-D", str(primary.data_dir), "-U", SUPERUSER, "--auth=trust", "--no-sync")
        with (primary.data_dir / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write("host all all 127.0.0.1/32 trust\nhost replication all 127.0.0.1/32 trust\n")
        primary.configure({**SERVER_SETTINGS, "port": str(primary.port)})
        primary.start()
        primary.query(f'CREATE DATABASE "{self.database}"')
        primary.run(
            "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", SUPERUSER,
            "-D", str(standby.data_dir), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync",
        )  # fmt: skip
        standby.configure(
            {
                "port": str(standby.port),
                "primary_conninfo": (
                    f"'host=127.0.0.1 port={primary.port} user={SUPERUSER} application_name={STANDBY_NAME}'"
                ),
                # Promoted, it must not wait for a standby of its own (a failover manager sees to
                # this in production: Patroni, for one, rewrites the setting).
                "synchronous_standby_names": "''",
            }
        )
        standby.start()
        # Only now: a primary told to wait for a standby that is not there waits for ever.
        primary.query(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        primary.query("SELECT pg_reload_conf()")
        wait_until(
            lambda: self.standby_state() == "sync", timeout=60, what="the standby streaming synchronously"
        )
        return self

    def standby_state(self) -> str | None:
        """``sync`` once the primary waits for the standby at each commit (pg_stat_replication)."""
        rows = self.primary.query(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = :name", name=STANDBY_NAME
        )
        return str(rows[0].sync_state) if len(rows) == 1 else None

    def multi_host_url(self) -> str:
        """The URL naming both, primary first, as an operator writes it (libpq's host list)."""
        return (
            f"postgresql+psycopg://{SUPERUSER}@{self.primary.host},{self.standby.host}/{self.database}"
            "?target_session_attrs=read-write"
        )

    def close(self) -> None:
        for cluster in (self.primary, self.standby):
            if cluster.data_dir.exists() and cluster.running():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    cluster.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ReplicatedPair:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_server_user() -> dict[str, Any]:
    """subprocess arguments that run a server tool as ``postgres`` when we are root."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam(SUPERUSER)
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": "/"}


def _hand_to_server_user(directory: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(SUPERUSER)
        os.chown(directory, user.pw_uid, user.pw_gid)
