"""The wheel installed as users install it: into a fresh virtualenv that already holds ml-metadata 1.17.1
(protobuf < 5, as TFX 1.x pins) or the current kfp (protobuf 6), on Python 3.9, 3.11 and 3.13.

Installing mlmd-log there must not move protobuf (or anything else the other package needs), ``pip
check`` must stay clean, and both must work in one process. Each venv costs ~15-40 s with pip's cache.
Interpreters come from pyenv; a missing one skips locally and fails in CI.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PIP = ["-m", "pip", "--disable-pip-version-check", "--no-input"]


def _interpreter(version: str) -> str:
    """pyenv's newest interpreter of that minor version (or this one, if it is that version)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        versions = sorted((p for p in Path(root, "versions").iterdir()
                           if p.name.startswith(version + ".") and p.name[len(version) + 1:].isdigit()),
                          key=lambda p: int(p.name.rsplit(".", 1)[1]))
    except (OSError, subprocess.CalledProcessError):
        versions = []
    if versions and (versions[-1] / "bin" / "python").exists():
        return str(versions[-1] / "bin" / "python")
    problem = f"no Python {version} (pyenv install {version})"
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this tree, built from a copy so the checkout gets no build/ or egg-info."""
    source = tmp_path_factory.mktemp("source") / "mlmd-log"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache", ".hypothesis",
        "mlmd-data", ".cache"))
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, *_PIP, "wheel", "-q", "--no-deps", "-w", str(out), str(source)])
    [built] = out.glob("mlmd_log-*.whl")
    return built


def _run(command: list, **kwargs) -> str:
    run = subprocess.run(command, capture_output=True, text=True, timeout=900, **kwargs)
    assert run.returncode == 0, f"{command}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return run.stdout


def _versions(python: str) -> dict:
    listing = _run([python, *_PIP, "list", "--format=freeze"])
    return dict(line.split("==", 1) for line in listing.splitlines() if "==" in line)


def _install_beside(tmp_path: Path, version: str, other: str, wheel: Path) -> str:
    """A venv with ``other`` installed first, then our wheel; returns its python after checking that
    nothing ``other`` brought moved and that pip's dependency check passes."""
    venv = tmp_path / "venv"
    _run([_interpreter(version), "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    _run([python, *_PIP, "install", "-q", other])
    before = _versions(python)
    _run([python, *_PIP, "install", "-q", str(wheel)])
    after = _versions(python)
    moved = {name: (before[name], after.get(name)) for name in before if after.get(name) != before[name]}
    assert not moved, f"installing mlmd-log changed what {other} brought: {moved}"
    assert "mlmd-log" in after, after
    _run([python, *_PIP, "check"])
    return python


# One process, both packages: a store round trip through our API, then messages across both. A file,
# not ``-c``: kfp reads a component's source.
_USE_BOTH = textwrap.dedent("""
    import sys
    import google.protobuf
    import mlmd_log
    from mlmd_log.proto import metadata_store_pb2 as pb
    store = mlmd_log.MetadataStore(pb.ConnectionConfig(fake_database={}))
    type_id = store.put_artifact_type(pb.ArtifactType(name="Model", base_type=pb.ArtifactType.MODEL))
    artifact = pb.Artifact(type_id=type_id, uri="gs://m")
    artifact.custom_properties["hp"].struct_value.update({"lr": 0.1})
    [artifact_id] = store.put_artifacts([artifact])
    [back] = store.get_artifacts(list_options=mlmd_log.ListOptions(filter_query="uri = 'gs://m'"))
    assert back.id == artifact_id and back.custom_properties["hp"].struct_value["lr"] == 0.1, back
    assert store.get_artifact_type("Model").base_type == pb.ArtifactType.MODEL
    if sys.argv[1] == "ml-metadata":
        from ml_metadata.proto import metadata_store_pb2 as theirs
        from ml_metadata import metadata_store
        official = metadata_store.MetadataStore(theirs.ConnectionConfig(fake_database={}))
        their_type = official.put_artifact_type(theirs.ArtifactType(name="Model"))
        copy = theirs.Artifact.FromString(back.SerializeToString())  # our bytes, their class
        copy.ClearField("id")
        copy.type_id = their_type
        [their_id] = official.put_artifacts([copy])
        [their_back] = official.get_artifacts_by_id([their_id])
        assert their_back.custom_properties["hp"].struct_value["lr"] == 0.1, their_back
    else:
        from kfp import compiler, dsl

        @dsl.component
        def train(lr: float) -> str:
            return str(lr)

        @dsl.pipeline(name="p")
        def pipeline(lr: float = 0.1):
            train(lr=lr)

        compiler.Compiler().compile(pipeline, sys.argv[2])
    print("protobuf", google.protobuf.__version__, "mlmd-log", mlmd_log.__version__)
""")


def _script(tmp_path: Path) -> str:
    path = tmp_path / "use_both.py"
    path.write_text(_USE_BOTH)
    return str(path)


@pytest.mark.reference
def test_installs_beside_ml_metadata_1_17_on_python_3_11(tmp_path, wheel):
    python = _install_beside(tmp_path, "3.11", "ml-metadata==1.17.1", wheel)
    out = _run([python, _script(tmp_path), "ml-metadata"], cwd=tmp_path)
    assert out.startswith("protobuf 4."), out


@pytest.mark.parametrize("version", ["3.9", "3.11", "3.13"])
def test_installs_beside_kfp(tmp_path, wheel, version):
    python = _install_beside(tmp_path, version, "kfp", wheel)
    out = _run([python, _script(tmp_path), "kfp", str(tmp_path / "pipeline.yaml")], cwd=tmp_path)
    assert (tmp_path / "pipeline.yaml").read_text().count("train") > 0
    assert out.split()[1].split(".")[0] in {"5", "6"}, out  # kfp's protobuf, not moved to 7
