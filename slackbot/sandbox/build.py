"""Builds the sandbox image from the recipe shipped in `slackbot/sandbox/image/`."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import docker
import docker.errors

from slackbot.sandbox.docker import SandboxError, docker_host

IMAGE_DIR = Path(__file__).parent / "image"
PROXY_FILES = (Path(__file__).parent / "egress_proxy.py", Path(__file__).parent / "egress_rules.py")
RECIPE_LABEL = "slackbot.recipe"
DEFAULT_TAG = "slackbot-sandbox:latest"
DEFAULT_BASE = "debian:bookworm-slim"
CERT_SUFFIXES = (".crt", ".pem", ".cer")


def build_image(*, tag: str = DEFAULT_TAG, base: str = DEFAULT_BASE, ca_certs_dir: Path | None = None,
                docker_client: Any = None, on_line: Callable[[str], None] | None = print,
                timeout_s: float = 1800) -> None:
    """Builds `tag` on top of `base`, adding the certificates found in `ca_certs_dir`.

    Build output goes line by line to `on_line` (print by default; None keeps quiet).
    Raises SandboxError when Docker is not reachable or the build fails.
    """
    emit = on_line or (lambda line: None)
    with tempfile.TemporaryDirectory(prefix="slackbot-sandbox-build-") as tmp:
        context = Path(tmp)
        shutil.copy2(IMAGE_DIR / "Dockerfile", context / "Dockerfile")
        for path in PROXY_FILES:
            shutil.copy2(path, context / path.name)
        certs = context / "ca-certs"
        certs.mkdir()
        for cert in _find_certs(ca_certs_dir):
            # update-ca-certificates only reads *.crt
            shutil.copyfile(cert, certs / f"{cert.stem}.crt")
            emit(f"adding CA certificate {cert}")

        client = docker_client
        try:
            client = client or docker.from_env(timeout=int(timeout_s))
            stream = client.api.build(path=str(context), tag=tag, buildargs={"BASE": base}, rm=True,
                                      forcerm=True, decode=True, labels={RECIPE_LABEL: recipe_hash()})
            _follow(stream, emit, base)
        except SandboxError:
            raise
        except docker.errors.APIError as exc:
            raise SandboxError(f"Building {tag} failed: {exc.explanation or exc}", operation="build") from exc
        except docker.errors.DockerException as exc:
            raise SandboxError(f"Docker is not reachable (DOCKER_HOST={docker_host()}): {exc}",
                               operation="build", retryable=True) from exc
        finally:
            if docker_client is None and client is not None:
                client.close()


def recipe_hash() -> str:
    """This code's recipe (the Dockerfile and the egress proxy files the image carries). The image keeps it
    as a label, so `doctor` can tell an image built from another version."""
    digest = hashlib.sha256()
    for path in (IMAGE_DIR / "Dockerfile", *PROXY_FILES):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _find_certs(ca_certs_dir: Path | None) -> list[Path]:
    if ca_certs_dir is None:
        return []
    folder = Path(ca_certs_dir)
    if not folder.is_dir():
        raise SandboxError(f"The CA certificates folder {folder} does not exist", operation="build")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CERT_SUFFIXES)


def _follow(stream: Any, emit: Callable[[str], None], base: str) -> None:
    """Passes the engine's build messages on; its error message becomes a SandboxError."""
    for chunk in stream:
        if "stream" in chunk:
            for line in chunk["stream"].splitlines():
                if line.strip():
                    emit(line)
        elif "status" in chunk:
            emit(chunk["status"])
        if "error" in chunk:
            message = chunk["error"].strip()
            hint = ""
            if "pull access denied" in message or "not found" in message and base in message:
                hint = f" (the base image {base} is not available: pull it, or pass --base)"
            raise SandboxError(f"Building the sandbox image failed: {message}{hint}", operation="build")
