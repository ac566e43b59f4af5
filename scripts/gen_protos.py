"""Regenerate mlmd_log/schemas/*_pb2*.py from the .proto sources.

Run from anywhere: ``python scripts/gen_protos.py``. ``--check`` exits 1 when the
committed modules differ from what the sources generate (used by the tests).
"""
from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCHEMAS = ROOT / "mlmd_log" / "schemas"
WITH_GRPC = {"metadata_store_service.proto"}


def generate(out_dir: pathlib.Path) -> None:
    from grpc_tools import protoc
    import grpc_tools

    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    for proto in sorted(SCHEMAS.glob("*.proto")):
        rel = proto.relative_to(ROOT).as_posix()
        args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
        if proto.name in WITH_GRPC:
            args.append(f"--grpc_python_out={out_dir}")
        if protoc.main(args + [rel]) != 0:
            raise SystemExit(f"protoc failed on {rel}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp)
        generate(out)
        produced = sorted((out / "mlmd_log" / "schemas").glob("*_pb2*.py*"))
        stale = [p.name for p in produced if not (SCHEMAS / p.name).exists()
                 or (SCHEMAS / p.name).read_bytes() != p.read_bytes()]
        if opts.check:
            if stale:
                print("stale generated modules: " + ", ".join(stale))
                return 1
            return 0
        for p in produced:
            shutil.copyfile(p, SCHEMAS / p.name)
        print(f"wrote {len(produced)} modules into {SCHEMAS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
