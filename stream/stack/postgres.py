"""PostgreSQL from the Debian package, in a throw-away cluster with trust auth.

Postgres refuses to run as root, so when we are root the cluster belongs to the
``postgres`` system user. Durability is switched off (fsync and friends): the
cluster is deleted by ``down`` anyway and tests run faster.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

from stream.stack import procs
from stream.stack.downloads import debian_binary
from stream.stack.errors import StackError
from stream.stack.ports import LOOPBACK
from stream.stack.service import Context, PortPicker, Record, Service

DATABASE = "rating"
SUPERUSER = "rating"
_SYSTEM_USER = "postgres"


def _find_bin_dir() -> Path | None:
    """Newest Debian PostgreSQL server install (Debian keeps its bins off PATH)."""
    dirs = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    dirs.sort(key=lambda p: int(re.sub(r"\D", "", p.parent.name) or 0))
    return dirs[-1] if dirs else None


def _bin_dir(ctx: Context) -> Path:
    found = _find_bin_dir()
    if found is None:
        debian_binary(ctx, "pg_ctlcluster", "postgresql", "/usr/bin/pg_ctlcluster")
        found = _find_bin_dir()
    if found is None:
        raise StackError("postgresql installed but no /usr/lib/postgresql/*/bin/initdb found")
    return found


def _run_as() -> str | None:
    return _SYSTEM_USER if os.geteuid() == 0 else None


def _traversable_by(path: Path, user: str) -> bool:
    """Can ``user`` reach ``path``? Pytest's tmp dirs, for one, are root-only."""
    entry = pwd.getpwnam(user)
    groups = {entry.pw_gid, *os.getgrouplist(user, entry.pw_gid)}
    for part in [path, *path.parents]:
        st = part.stat()
        if st.st_uid == entry.pw_uid:
            bit = stat.S_IXUSR
        elif st.st_gid in groups:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _home(ctx: Context) -> Path:
    home = ctx.data_dir("postgres")
    user = _run_as()
    if user is None:
        home.mkdir(parents=True, exist_ok=True)
        return home
    home.parent.mkdir(parents=True, exist_ok=True)
    if not _traversable_by(home.parent, user):
        home = Path(tempfile.mkdtemp(prefix="usage-rating-postgres-"))
    home.mkdir(parents=True, exist_ok=True)
    shutil.chown(home, user, user)
    return home


def postgres_answers(port: int) -> bool:
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        return False
    try:
        done = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(port), "-t", "2"],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class PostgresService(Service):
    name: ClassVar[str] = "postgres"
    env_key: ClassVar[str] = "POSTGRES_DSN"
    ready_timeout: ClassVar[float] = 60.0
    # SIGTERM would wait for clients to disconnect; SIGINT aborts them.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def prepare(self, ctx: Context) -> None:
        _bin_dir(ctx)

    def _as_owner(self, argv: list[str], cwd: Path, what: str) -> None:
        user = _run_as()
        done = subprocess.run(
            argv,
            check=False,
            cwd=cwd,
            user=user,
            group=user,
            extra_groups=[] if user else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()[-procs.TAIL_LINES :]
            raise StackError(
                f"postgres: {what} failed (exit {done.returncode}):\n" + "\n".join(lines)
            )

    def launch(self, ctx: Context, port: int, pick_port: PortPicker) -> Record:
        bin_dir = _bin_dir(ctx)
        home = _home(ctx)
        data, run = home / "data", home / "run"
        self._as_owner(
            [
                str(bin_dir / "initdb"),
                "-D", str(data),
                "-U", SUPERUSER,
                "--auth-local=trust",
                "--auth-host=trust",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            home,
            f"initdb in {data}",
        )  # fmt: skip
        run.mkdir(exist_ok=True)
        if (user := _run_as()) is not None:
            shutil.chown(run, user, user)
        log_path = ctx.log_path(self.name)
        ref = procs.spawn(
            [
                str(bin_dir / "postgres"),
                "-D", str(data),
                "-p", str(port),
                "-c", f"listen_addresses={LOOPBACK}",
                # Not /var/run/postgresql: that is the system cluster's, and may
                # not even exist on a machine without one.
                "-c", f"unix_socket_directories={run}",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
            ],
            log_path=log_path,
            cwd=home,
            user=user,
        )  # fmt: skip
        return Record(
            component=self.name,
            pid=ref.pid,
            start_ticks=ref.start_ticks,
            port=port,
            endpoint=f"postgresql://{SUPERUSER}@{LOOPBACK}:{port}/{DATABASE}",
            data_dir=str(home),
            log=str(log_path),
        )

    def probe(self, record: Record) -> bool:
        return postgres_answers(record.port)

    def after_ready(self, ctx: Context, record: Record) -> None:
        psql = _bin_dir(ctx) / "psql"
        done = subprocess.run(
            [
                str(psql), "-h", LOOPBACK, "-p", str(record.port), "-U", SUPERUSER,
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", f"CREATE DATABASE {DATABASE}",
            ],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"postgres: CREATE DATABASE {DATABASE} failed:\n{done.stderr.strip()}")
