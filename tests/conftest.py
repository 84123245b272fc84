"""Shared fixtures.

chDB serves one data path per process, so every in-process test shares one
path and gets a database of its own, dropped afterwards.
"""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from tracescore.collector.pipeline import IngestPipeline, PipelineSettings
from tracescore.collector.store import Store
from tracescore.collector.store.chdb_store import ChdbStore


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("chdb")
    # Held open for the whole session so per-test stores don't reopen the engine.
    keepalive = ChdbStore(path, database="default")
    yield path
    keepalive.close()


@pytest.fixture
def store(chdb_path: Path) -> Iterator[Store]:
    database = f"test_{secrets.token_hex(4)}"
    opened = ChdbStore(chdb_path, database=database)
    opened.migrate()
    yield opened
    opened.command(f"DROP DATABASE IF EXISTS {opened.db}")
    opened.close()


@pytest.fixture
def pipeline(store: Store, tmp_path: Path) -> Iterator[IngestPipeline]:
    """The ingest pipeline over the test's store; tests ``flush()`` before reading rows."""
    settings = PipelineSettings(spool_dir=tmp_path / "spool", fsync=False, flush_interval_s=0.05)
    with IngestPipeline(store, settings) as running:
        yield running


@pytest.fixture
def database(chdb_path: Path) -> Iterator[str]:
    """A database name for a test that creates it itself (e.g. through the CLI); dropped after."""
    name = f"test_{secrets.token_hex(4)}"
    yield name
    cleanup = ChdbStore(chdb_path, database=name)
    cleanup.command(f"DROP DATABASE IF EXISTS `{name}`")
    cleanup.close()
