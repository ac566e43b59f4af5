"""ml-metadata 1.17.1's own test suite, run against mlmd-log.

The official wheel ships ``metadata_store_test.py``. We copy it out of the
reference virtualenv at test time (it is not part of this repository), point its
three imports at mlmd_log, and run it with our interpreter. Every test of the
core store and of the query layer (filter queries, lineage) must pass;
MLMD_ORACLE_QUERY_LAYER=0 deselects the query-layer tests.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.reference

QUERY_LAYER = os.environ.get("MLMD_ORACLE_QUERY_LAYER", "1") == "1"
QUERY_LAYER_TESTS = "filter_query or lineage_subgraph"
IMPORTS = {
    "import ml_metadata as mlmd": "import mlmd_log as mlmd",
    "from ml_metadata import errors": "from mlmd_log import errors",
    "from ml_metadata.proto import metadata_store_pb2": "from mlmd_log.proto import metadata_store_pb2",
}


def _suite_dir(ref_python: str) -> Path:
    out = subprocess.run([ref_python, "-c", "import ml_metadata.metadata_store as m, os; print(os.path.dirname(m.__file__))"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_official_metadata_store_suite_passes(ref_python, tmp_path):
    source = _suite_dir(ref_python)
    text = (source / "metadata_store_test.py").read_text()
    for old, new in IMPORTS.items():
        assert old in text, f"the official suite no longer has {old!r}"
        text = text.replace(old, new)
    assert "ml_metadata" not in re.sub(r'""".*?"""', "", text, flags=re.S).replace("ml_metadata.MetadataStore", "")
    (tmp_path / "metadata_store_test.py").write_text(text)
    shutil.copy(source / "conftest.py", tmp_path / "conftest.py")
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "metadata_store_test.py"]
    if not QUERY_LAYER:
        args += ["-k", f"not ({QUERY_LAYER_TESTS})"]
    run = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    tail = run.stdout[-4000:]
    summary = re.search(r"(\d+) passed", tail)
    assert run.returncode == 0, f"official suite failed against mlmd-log:\n{tail}\n{run.stderr[-2000:]}"
    assert summary and int(summary.group(1)) >= 90, tail
