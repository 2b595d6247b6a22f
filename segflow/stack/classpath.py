"""Resolve a JVM runtime classpath from a pom kept in the repo, cached by the pom's hash.

Maven downloads the jars into the local Maven repository once; the resulting classpath is
written to the stack's state dir under a name derived from the pom's content, so later starts
neither download nor even run Maven. Editing a pom changes its hash and triggers one new
resolution.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

POM_DIR = Path(__file__).resolve().parent / "jvm"


class ClasspathError(RuntimeError):
    """Maven could not resolve a node's dependencies."""


def pom_path(node: str) -> Path:
    """The pom describing ``node``'s runtime classpath (``kafka`` or ``cassandra``)."""
    return POM_DIR / node / "pom.xml"


def resolve_classpath(
    node: str,
    cache_dir: Path,
    mvn: str = "mvn",
    repo_local: Path | None = None,
    pom: Path | None = None,
) -> list[Path]:
    """Return the jars of ``node``'s runtime classpath, running Maven only on a cache miss.

    ``pom`` defaults to the stack's own (``pom_path(node)``); benchmarks pass theirs (bench/jvm/)
    to get the same hash-keyed cache for JVM baselines that are no part of the stack.
    """
    pom = pom_path(node) if pom is None else pom
    cache_dir = cache_dir.resolve()  # Maven resolves a relative outputFile against the pom
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:16]
    cache_file = cache_dir / f"{node}-{digest}.classpath"
    if cache_file.is_file():
        jars = [Path(p) for p in cache_file.read_text().split(":") if p]
        if jars and all(jar.is_file() for jar in jars):
            return jars
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(".tmp")
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath",
        f"-Dmdep.outputFile={tmp}",
        "-Dmdep.includeScope=runtime",
    ]
    if repo_local is not None:
        cmd.append(f"-Dmaven.repo.local={repo_local}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except FileNotFoundError as exc:
        raise ClasspathError(
            f"Maven not found ({mvn}); install Maven 3.8+ or set SEGFLOW_STACK__MVN"
        ) from exc
    if proc.returncode != 0 or not tmp.is_file():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise ClasspathError(f"Maven failed to resolve {pom}:\n{tail}")
    tmp.replace(cache_file)
    return [Path(p) for p in cache_file.read_text().split(":") if p]


def find_jar(jars: list[Path], prefix: str) -> Path:
    """The jar whose file name starts with ``prefix`` (e.g. ``jamm-``)."""
    for jar in jars:
        if jar.name.startswith(prefix):
            return jar
    raise ClasspathError(f"no {prefix}*.jar on the resolved classpath")
