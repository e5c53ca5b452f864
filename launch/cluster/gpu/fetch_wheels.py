"""The wheels a GPU machine with PyTorch and JAX (but no TensorFlow, Keras or Ray) needs for the GPU check,
for CPython 3.12 on x86-64 Linux, into ``launch/cluster/gpu/wheels/`` (not tracked): at most 60 MiB in all.

    python launch/cluster/gpu/fetch_wheels.py

Ray's wheel is 79 MB, 32 MB of it Java support (``ray/jars``) that a Python sweep never loads: it is
written again without that folder. ``launch/cluster/gpu/run_check.sh`` unpacks them all onto ``PYTHONPATH`` there.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WHEELS = HERE / "wheels"
LIMIT_MIB = 60
# what the check imports that such a machine lacks (its numpy, pandas, pyarrow, matplotlib, rich, pyyaml,
# msgpack, protobuf and packaging are used as they are), pinned to the versions tested here
PACKAGES = [
    "ray==2.60.0", "keras==3.15.1", "absl-py==2.5.1", "namex==0.1.0", "optree==0.20.0", "h5py==3.16.0",
    "pydantic==2.14.4", "pydantic_core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
    "typing_extensions==4.16.0", "tensorboardX==2.6.5", "jsonschema==4.26.0", "jsonschema-specifications==2025.9.1",
    "referencing==0.37.0", "rpds-py==2026.9.1", "attrs==26.1.0", "click==8.5.1", "filelock==4.3.1",
    "fsspec==2026.9.0", "requests==2.34.2", "urllib3==2.8.0", "idna==3.20", "charset-normalizer==3.5.3",
    "certifi==2026.10.19.post1",
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "any"]


def without_jars(wheel: Path) -> Path:
    """``wheel`` written again without ``ray/jars/`` (its RECORD too)."""
    slim = wheel.with_name(wheel.name.replace(".whl", ".nojars.whl"))
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as out:
        for info in source.infolist():
            if info.filename.startswith("ray/jars/"):
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(b"ray/jars/"))
            out.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    wheel.unlink()
    return slim


def main() -> None:
    WHEELS.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
               "--abi", "none", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(WHEELS), *PACKAGES]
    subprocess.run(command, check=True)
    for wheel in WHEELS.glob("ray-*.whl"):
        if not wheel.name.endswith(".nojars.whl"):
            without_jars(wheel)
    total = sum(w.stat().st_size for w in WHEELS.glob("*.whl")) / 2**20
    print(f"{len(list(WHEELS.glob('*.whl')))} wheels, {total:.1f} MiB in {WHEELS} (limit {LIMIT_MIB} MiB)")
    if total > LIMIT_MIB:
        sys.exit(f"the wheels take {total:.1f} MiB, more than {LIMIT_MIB}")


if __name__ == "__main__":
    main()
