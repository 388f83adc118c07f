"""grpcurl v1.8.6, which speaks server reflection v1alpha only, works against
a real server with no proto files: list, describe, health checks and a call
that fails precisely."""

from __future__ import annotations

import json
import subprocess

import tools


def test_the_binary_is_the_v1alpha_only_release(grpcurl):
    assert tools.grpcurl_version(grpcurl) == "v1.8.6"


def test_list_shows_every_service(grpcurl, server):
    out = subprocess.run(
        [str(grpcurl), "-plaintext", server.grpc, "list"], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    services = set(out.stdout.split())
    assert {
        "crypto.v1.CryptoStreamingService",
        "crypto.v1.CryptoService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= services, out.stdout


def test_describe_shows_methods_and_messages(grpcurl, server):
    out = subprocess.run(
        [str(grpcurl), "-plaintext", server.grpc, "describe", "crypto.v1.CryptoStreamingService"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "rpc ConnectClient ( stream .crypto.v1.ClientMessage ) returns ( stream .crypto.v1.ServerCommand );" in out.stdout
    assert "rpc ExecuteCommandSync" in out.stdout
    out = subprocess.run(
        [str(grpcurl), "-plaintext", server.grpc, "describe", "crypto.v1.ClientRegistration"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "string client_type = 2;" in out.stdout


def test_health_check_is_serving(grpcurl, server):
    out = subprocess.run(
        [str(grpcurl), "-plaintext", server.grpc, "grpc.health.v1.Health/Check"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"status": "SERVING"}


def test_execute_command_sync_for_a_missing_client_is_not_found(grpcurl, server):
    body = json.dumps({"client_id": "nobody", "command": {"ping": {}}, "timeout_ms": 2000})
    out = subprocess.run(
        [str(grpcurl), "-plaintext", "-d", body, server.grpc, "crypto.v1.CryptoStreamingService/ExecuteCommandSync"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert out.returncode != 0
    assert "Code: NotFound" in out.stderr, out.stderr
    assert "nobody" in out.stderr
