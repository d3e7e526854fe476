"""The embedded SQLite database's files are private to intaked's user.

The ticket store holds every message people sent the helpdesk, so neither the database nor its
directory is for other users of the machine. New ones are private from the start: the command
line runs with umask 077 (intaked/cli.py), and the directory is created with mode 0700 here.

What an older intaked or a looser umask left behind is brought in line when an engine opens the
database: the database file and its companions (``-wal``, ``-shm``, ``-journal``, ``-writer``)
lose every permission for others (``o-rwx``), and so does intaked's own state directory (the
default one, outside systemd). Group permissions are left as the operator set them (a reporting
tool in intaked's group may read the store; SQLite gives new ``-wal``/``-shm`` files the
database file's own mode). A directory intaked does not own (one named by ``database.url``, or
systemd's ``StateDirectory=``, whose mode the unit sets) is not changed: if others may enter it,
a warning says so. Each change is logged (``state_file_mode_tightened``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import structlog

from intaked.config import default_state_dir

log = structlog.get_logger(__name__)

PRIVATE_DIRECTORY_MODE = 0o700
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal", "-writer")


def prepare_database_files(database: Path) -> None:
    """Create the directory of ``database`` (0700) if missing, and take away others' access to
    the database's files and to intaked's own state directory."""
    directory = database.parent
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY_MODE)
    for suffix in SQLITE_COMPANIONS:
        _close_to_others(Path(f"{database}{suffix}"))
    if _own_directory(directory):
        _close_to_others(directory)
        return
    try:
        mode = directory.stat().st_mode
    except OSError:
        return
    if mode & stat.S_IRWXO:
        log.warning(
            "database_directory_open_to_others",
            path=str(directory),
            mode=oct(stat.S_IMODE(mode)),
            hint=f"chmod o-rwx {directory}",
        )


def _own_directory(directory: Path) -> bool:
    """Whether ``directory`` is intaked's own state directory outside systemd."""
    return not os.environ.get("STATE_DIRECTORY") and directory == default_state_dir()


def _close_to_others(path: Path) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & stat.S_IRWXO:
            tightened = mode & ~stat.S_IRWXO
            path.chmod(tightened)
            log.warning(
                "state_file_mode_tightened", path=str(path), mode_before=oct(mode), mode=oct(tightened)
            )
    except FileNotFoundError:
        return
    except OSError as exc:  # not ours (another owner): say so, go on
        log.warning("state_file_mode_unchanged", path=str(path), error=str(exc))
