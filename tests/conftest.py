"""Shared test fixtures."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Real public data kept beside the repository (never copied into it).
REALDATA = Path(os.environ.get("IMDSHUNT_REALDATA", REPO.parent / "shared" / "realdata"))


#: The test files that take longest (measured with --durations on 2 cores), run first: under
#: pytest-xdist (`make test`, one worker per core, a file's tests on one worker) the last
#: worker otherwise runs a long Spark file alone while the others have finished.
LONGEST_FIRST = (
    "test_engine_spark.py",
    "test_exposure_evidence.py",
    "test_spark_read.py",
    "test_state.py",
    "test_modes_equivalence.py",
    "test_s3_source.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def upload_tree(client, bucket: str, root: Path, base: Path | None = None) -> int:
    """Put every file under ``root`` into ``bucket`` (an existing bucket), keyed by its path
    relative to ``base`` (default ``root``), several at a time: a synthetic organisation is
    thousands of small objects, and each is a round trip to moto's server. Returns the count."""
    from concurrent.futures import ThreadPoolExecutor

    base = base or root
    files = sorted(p for p in root.rglob("*") if p.is_file())

    def put(p: Path) -> None:
        client.put_object(Bucket=bucket, Key=p.relative_to(base).as_posix(), Body=p.read_bytes())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    return len(files)


def java_major() -> int | None:
    """The major version of the ``java`` on PATH (None: none there, or unreadable)."""
    java = shutil.which("java")
    if java is None:
        return None
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (2 cores, small-file settings) for every Spark test of a run
    (of a pytest-xdist worker): starting a JVM costs more than most of the tests. Skips
    without pyspark or a Java it can run on."""
    pyspark = pytest.importorskip(
        "pyspark", reason="pyspark not installed (pip install '.[spark]')"
    )
    java = java_major()
    if java is None:
        pytest.skip("no Java runtime for Spark")
    needed = 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
    if java < needed:
        pytest.skip(f"pyspark {pyspark.__version__} needs Java {needed}+, found Java {java}")
    from imdshunt.engine.spark import local_session

    session = local_session("local[2]", small_inputs=True)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def realdata() -> Path:
    if not REALDATA.is_dir():
        pytest.skip(f"real data not present at {REALDATA}")
    return REALDATA


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """A moto server over real HTTP on loopback; yields its endpoint URL."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto server did not start")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        # a loaded machine (CI shares its 2 cores) can keep werkzeug from seeing SIGTERM in
        # time; the server holds nothing worth a graceful exit
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture()
def aws_env(monkeypatch, moto_server):
    """Environment pointing boto3 at the moto server with dummy credentials."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


def moto_route_gap(service: str, operations: list[str], model=None) -> str | None:
    """Why moto's server cannot serve these calls of this botocore, or None when it can.

    botocore describes each AWS service with a wire protocol, and changes it now and then (1.44
    moved Athena from ``json`` to ``rest-json``); moto routes a service by the URL paths it
    lists in ``moto.<service>.urls``. When botocore sends an operation to a path moto does not
    route, moto's server answers 404 to every call, which would otherwise read as a bug of ours.
    The check compares the two packages' own descriptions, operation by operation.
    """
    import importlib
    import re

    import botocore
    import botocore.session
    import moto

    model = model or botocore.session.get_session().get_service_model(service)
    paths = list(importlib.import_module(f"moto.{service}.urls").url_paths)
    routes = [re.compile(p.format("")) for p in paths]
    for name in operations:
        http = model.operation_model(name).http
        # a concrete path for the URI template: /queryexecution/{QueryExecutionId} -> .../x
        uri = re.sub(r"\{[^}]+\}", "x", http.get("requestUri", "/").split("?", 1)[0])
        if not any(r.match(uri) for r in routes):
            return (
                f"botocore {botocore.__version__} sends {service}:{name} as "
                f"{model.protocol} {http.get('method')} {uri}; moto {moto.__version__} routes "
                f"{service} only at {[p.format('') for p in paths]} (its server would answer 404)"
            )
    return None
