"""Pinned service versions, fetched once into a shared cache and reused.

Kafka and Apicurio come from Maven (the only artifact source this machine has);
redis, postgres and prometheus come from Debian packages.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from stream.stack.errors import StackError
from stream.stack.service import Context, find_tool

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Kafka declares no SLF4J binding; without this one the broker logs nothing.
LOG4J_SLF4J_VERSION = "2.24.3"
# 3.0.x is the last line that runs on Java 17 (3.3.x needs Java 21).
APICURIO_VERSION = "3.0.9"

MARKER = ".complete"
MAVEN_TIMEOUT_S = 1200.0
_TAIL_LINES = 30

_KAFKA_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.usage-rating</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def cache_dir() -> Path:
    """``$RATING_CACHE_DIR``, else ``~/.cache/usage-rating``."""
    configured = os.environ.get("RATING_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache/usage-rating"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    # Two `make test` runs on a cold cache must not download into the same place.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _complete(target: Path) -> bool:
    return (target / MARKER).is_file()


def _cached(ctx: Context, target: Path, what: str, build: Callable[[Path], None]) -> Path:
    """Return ``target``, building it first in a scratch dir when it has no marker.

    The marker is written last and the directory renamed into place, so an
    interrupted download is redone instead of being half-used.
    """
    if _complete(target):
        return target
    with _locked(target.with_name(f".{target.name}.lock")):
        if _complete(target):
            return target
        ctx.say(f"{what} (first run only)…")
        started = time.monotonic()
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            build(scratch)
            (scratch / MARKER).write_text(
                json.dumps({"built_at": time.time(), "seconds": time.monotonic() - started})
            )
            if target.exists():
                shutil.rmtree(target)
            scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        ctx.say(f"{what}: done in {time.monotonic() - started:.0f} s, cached in {target}")
    return target


def _mvn(args: list[str], cwd: Path, what: str) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            f"mvn not found on PATH: it is needed once to download {what} "
            "(Debian: apt-get install maven)"
        )
    try:
        done = subprocess.run(
            [mvn, "-q", "-B", *args],
            check=False,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=MAVEN_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"Maven download of {what} timed out after {exc.timeout:.0f} s") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()[-_TAIL_LINES:]
        raise StackError(
            f"Maven download of {what} failed (mvn exit {done.returncode}); last lines:\n"
            + "\n".join(output)
        )


def kafka_libs(ctx: Context) -> Path:
    """Directory of the Kafka broker's runtime jars (classpath ``<dir>/*``)."""
    home = ctx.cache_dir / f"kafka-{KAFKA_VERSION}"

    def build(scratch: Path) -> None:
        (scratch / "pom.xml").write_text(
            _KAFKA_POM.format(scala=SCALA_VERSION, kafka=KAFKA_VERSION, log4j=LOG4J_SLF4J_VERSION)
        )
        _mvn(
            [
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={scratch / 'libs'}",
            ],
            scratch,
            f"Kafka {KAFKA_VERSION}",
        )
        if not any((scratch / "libs").glob(f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}*.jar")):
            raise StackError(f"Maven ran but no kafka_{SCALA_VERSION}-{KAFKA_VERSION} jar came")

    return _cached(ctx, home, f"kafka: downloading {KAFKA_VERSION} via Maven", build) / "libs"


def apicurio_jar(ctx: Context) -> Path:
    """The Apicurio Registry runner jar (its ``lib/`` sits next to it)."""
    home = ctx.cache_dir / f"apicurio-registry-{APICURIO_VERSION}"
    jar_name = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"

    def build(scratch: Path) -> None:
        artifact = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
        _mvn(
            ["dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={scratch}"],
            scratch,
            f"Apicurio Registry {APICURIO_VERSION}",
        )
        tarballs = list(scratch.glob("*.tar.gz"))
        if not tarballs:
            raise StackError(f"Maven ran but no Apicurio tarball came into {scratch}")
        with tarfile.open(tarballs[0]) as tar:
            tar.extractall(scratch / "app", filter="data")
        tarballs[0].unlink()
        jars = list((scratch / "app").rglob(jar_name))
        if not jars:
            raise StackError(f"{jar_name} not found in the Apicurio tarball")
        # A fixed path inside the cache whatever the tarball's top folder is.
        jars[0].parent.rename(scratch / "registry")
        shutil.rmtree(scratch / "app", ignore_errors=True)

    return (
        _cached(ctx, home, f"registry: downloading Apicurio {APICURIO_VERSION} via Maven", build)
        / "registry"
        / jar_name
    )


def debian_binary(ctx: Context, name: str, package: str, *locations: str) -> str:
    """Path of ``name``; installs the Debian ``package`` when missing and we are root."""
    found = find_tool(name, *locations)
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise StackError(f"{name} not found: install the `{package}` package (apt-get install)")
    ctx.say(f"{name}: installing Debian package {package} (first run only)…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update"], ["install", "-y", "--no-install-recommends", package]):
        done = subprocess.run(
            [apt, "-q", *args],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            lines = (done.stdout + done.stderr).strip().splitlines()[-_TAIL_LINES:]
            raise StackError(
                f"apt-get {args[0]} for {package} failed (exit {done.returncode}):\n"
                + "\n".join(lines)
            )
    found = find_tool(name, *locations)
    if found is None:
        raise StackError(f"{package} installed but {name} still not found")
    return found
