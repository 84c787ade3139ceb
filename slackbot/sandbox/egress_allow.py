"""The default egress allowlist, read from this machine's own package-manager configuration.

No registry is named here: pip's indexes, npm's registries and apt's sources come from the machine's
environment and configuration files, and pip's and npm's defaults from the installed tools themselves.
Nothing here touches the network; `npm config get registry` is the one subprocess.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from slackbot.sandbox.egress_rules import parse_entry

NPM_TIMEOUT_S = 5.0
_SOURCE_SCHEMES = {"http", "https", "mirror"}  # apt's mirror:// method fetches its list over http
_NPM_REGISTRY_KEY = re.compile(r"(@[^:]+:)?registry")


def default_allowlist(*, env: Mapping[str, str] | None = None, home: Path | None = None, etc: Path = Path("/etc"),
                      pip_site_config: Path | None = Path(sys.prefix) / "pip.conf",
                      npm_global_config: Path | None = None, npm: str | None = "npm",
                      pip_default_urls: Sequence[str] | None = None) -> list[str]:
    """HOST or HOST:PORT entries (the port only when not 80 or 443) for pip, npm and apt, sorted.

    `env` defaults to the process environment, `home` to its HOME, `etc` to /etc; `npm` is the
    executable asked for its effective registry (None: do not run it); `pip_default_urls` replaces
    the index the installed pip uses when none is configured (None: ask pip).
    """
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    if npm_global_config is None:
        prefix = env.get("NPM_CONFIG_PREFIX") or env.get("npm_config_prefix") or "/usr/local"
        npm_global_config = Path(prefix) / "etc" / "npmrc"
    pip = pip_settings(env, _pip_config_files(env, home, etc, pip_site_config))
    urls = [*pip_urls(pip, pip_default_urls),
            *[f"http://{host}" for host in pip.get("trusted-host", [])],
            *npm_registries(env, [home / ".npmrc", etc / "npmrc", npm_global_config], npm),
            *apt_uris(etc / "apt")]
    return sorted({entry for entry in map(_entry_for_url, urls) if entry})


def _pip_config_files(env: Mapping[str, str], home: Path, etc: Path, site_config: Path | None) -> list[Path]:
    """pip's configuration files in its loading order."""
    chosen = env.get("PIP_CONFIG_FILE")
    if chosen == os.devnull:
        return []  # pip's way of saying: no configuration files at all
    user_dir = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    files = [etc / "xdg" / "pip" / "pip.conf", etc / "pip.conf", home / ".pip" / "pip.conf",
             user_dir / "pip" / "pip.conf"]
    files += [path for path in (site_config, Path(chosen) if chosen else None) if path]
    return files


def pip_urls(settings: Mapping[str, list[str]], default_urls: Sequence[str] | None) -> list[str]:
    """The index URLs pip is configured with, plus pip's own default when no network index replaces it."""
    urls = settings.get("index-url", []) + settings.get("extra-index-url", [])
    replaced = any(_entry_for_url(url) for url in settings.get("index-url", []))
    no_index = any(value.lower() in ("1", "true", "yes", "on") for value in settings.get("no-index", []))
    if not replaced and not no_index:
        urls += pip_default_index() if default_urls is None else list(default_urls)
    return urls


def pip_default_index() -> list[str]:
    """The index the installed pip uses by default, as pip itself defines it; [] without pip."""
    try:
        from pip._internal.models.index import PyPI
    except Exception:
        return []
    return [PyPI.url, f"https://{PyPI.file_storage_domain}/"]


def pip_settings(env: Mapping[str, str], files: Iterable[Path]) -> dict[str, list[str]]:
    """Every value of every key in pip's configuration files and PIP_* variables (all sections alike)."""
    values: dict[str, list[str]] = {}
    for path in files:
        parser = configparser.RawConfigParser(strict=False)
        try:
            parser.read_string(_read(path))
        except configparser.Error:
            continue
        for section in parser.sections():
            for key, value in parser.items(section):
                values.setdefault(key.replace("_", "-"), []).extend(value.split())
    for key in ("index-url", "extra-index-url", "trusted-host", "no-index"):
        variable = "PIP_" + key.upper().replace("-", "_")
        values.setdefault(key, []).extend(env.get(variable, "").split())
    return values


def npm_registries(env: Mapping[str, str], files: Iterable[Path], npm: str | None,
                   timeout: float = NPM_TIMEOUT_S) -> list[str]:
    """Registries from npm's environment variables and npmrc files, and what npm itself reports."""
    urls = [value for key, value in env.items() if key.lower() == "npm_config_registry"]
    for path in files:
        urls += [value for key, value in _npmrc_items(_read(path)) if _NPM_REGISTRY_KEY.fullmatch(key)]
    return urls + (_npm_effective_registry(npm, env, timeout) if npm else [])


def _npmrc_items(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        key, equals, value = line.strip().partition("=")
        value = value.strip().strip("\"'")
        if equals and not key.startswith((";", "#")) and "${" not in value:
            yield key.strip(), value


def _npm_effective_registry(npm: str, env: Mapping[str, str], timeout: float) -> list[str]:
    executable = shutil.which(npm, path=env.get("PATH"))
    if not executable:
        return []
    # Only what npm needs to find its configuration: the bot's own secrets stay out of the child.
    child_env = {key: value for key, value in env.items()
                 if key in ("PATH", "HOME") or key.lower().startswith("npm_config_")}
    try:
        process = subprocess.Popen([executable, "config", "get", "registry"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env,
                                   cwd="/", start_new_session=True)
    except OSError:
        return []
    with process:
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: children holding the pipe go too
            process.communicate()
            return []
    return output.split() if process.returncode == 0 else []


def apt_uris(apt_dir: Path) -> list[str]:
    """The URIs of apt's sources: one-line `.list` files and deb822 `.sources` files."""
    parts = apt_dir / "sources.list.d"
    uris = [uri for path in [apt_dir / "sources.list", *sorted(parts.glob("*.list"))]
            for uri in _one_line_uris(_read(path))]
    return uris + [uri for path in sorted(parts.glob("*.sources")) for uri in _deb822_uris(_read(path))]


def _one_line_uris(text: str) -> Iterator[str]:
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] not in ("deb", "deb-src"):
            continue
        rest = words[1:]
        if rest and rest[0].startswith("["):  # options: [ arch=amd64 signed-by=... ]
            closing = next((i for i, word in enumerate(rest) if word.endswith("]")), len(rest) - 1)
            rest = rest[closing + 1:]
        if rest:
            yield rest[0]


def _deb822_uris(text: str) -> Iterator[str]:
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields = _deb822_fields(paragraph)
        if fields.get("enabled", "yes").strip().lower() != "no":
            yield from fields.get("uris", "").split()


def _deb822_fields(paragraph: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    name = None
    for line in paragraph.splitlines():
        if line.startswith("#"):
            continue
        if line[:1] in (" ", "\t") and name:
            fields[name] += " " + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            fields[name] = value.strip()
    return fields


def _entry_for_url(url: str) -> str | None:
    """HOST or HOST:PORT for a network URL in a form the proxy accepts; None for local or odd ones."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme.lower().rsplit("+", 1)[-1] not in _SOURCE_SCHEMES or not host:
        return None
    host = f"[{host}]" if ":" in host else host
    try:
        return str(parse_entry(host if port in (None, 80, 443) else f"{host}:{port}"))
    except ValueError:
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
