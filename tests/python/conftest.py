"""Fixtures for the third-party client tests: Python stubs generated from
proto/ with grpcio-tools (as client authors generate theirs), grpcurl, and a
real `crypto-operator serve` process on loopback ports. A missing tool
fails the tests; it never skips them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tools  # noqa: E402

ROOT = tools.ROOT
BINARY = ROOT / "target" / "debug" / "crypto-operator"
WAIT = 10.0


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated `crypto.v1` modules: common_pb2, streaming_pb2,
    streaming_pb2_grpc, market_pb2."""
    import grpc_tools
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("stubs")
    protos = sorted(str(p.relative_to(ROOT / "proto")) for p in (ROOT / "proto").rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    rc = protoc.main(
        ["protoc", f"-I{ROOT / 'proto'}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *protos]
    )
    assert rc == 0, f"grpc_tools.protoc failed ({rc})"
    sys.path.insert(0, str(out))
    from crypto.v1 import common_pb2, market_pb2, streaming_pb2, streaming_pb2_grpc

    class Modules:
        pass

    m = Modules()
    m.common = common_pb2
    m.market = market_pb2
    m.streaming = streaming_pb2
    m.grpc = streaming_pb2_grpc
    return m


@pytest.fixture(scope="session")
def grpcurl() -> Path:
    try:
        return tools.ensure_grpcurl()
    except tools.ToolError as e:
        pytest.fail(f"grpcurl is required (bash tests/python/run.sh fetches it): {e}")


@dataclass
class Server:
    proc: subprocess.Popen
    grpc: str
    http: str
    lines: list = field(default_factory=list)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _addr(line: str, name: str) -> str:
    m = re.search(rf'{name}[=":]+([0-9.]+:[0-9]+)', line)
    assert m, f"no {name} in {line!r}"
    return m.group(1)


def start_server(*args: str) -> Server:
    if not BINARY.is_file():
        pytest.fail(f"{BINARY} is missing: run `cargo build --bin crypto-operator` (tests/python/run.sh does)")
    proc = subprocess.Popen(
        [str(BINARY), "serve", "--standalone", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
         "--drain-grace", "2s", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CRYPTO_LOG": "info", "NO_COLOR": "1"},
    )
    assert proc.stderr is not None
    serving: list[str] = []
    ready = threading.Event()
    lines: list[str] = []

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "serving" in line and not serving:
                serving.append(line)
                ready.set()
        ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(WAIT) or not serving:
        proc.kill()
        pytest.fail("crypto-operator serve did not start:\n" + "".join(lines))
    return Server(proc, _addr(serving[0], "grpc_addr"), _addr(serving[0], "http_addr"), lines)


@pytest.fixture
def server():
    s = start_server()
    yield s
    s.stop()
