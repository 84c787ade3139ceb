"""The default egress allowlist, read from fixture package-manager configuration (never this machine's)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from slackbot.sandbox.egress_allow import default_allowlist, npm_registries, pip_default_index
from slackbot.sandbox.egress_rules import parse_allowlist

DEFAULT_INDEX = ["https://index.example.test/", "https://files.example.test/"]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def allowlist(tmp_path: Path, env: dict[str, str] | None = None, **options) -> list[str]:
    options.setdefault("npm", None)
    options.setdefault("pip_default_urls", DEFAULT_INDEX)
    return default_allowlist(env=env or {}, home=tmp_path / "home", etc=tmp_path / "etc", pip_site_config=None,
                             npm_global_config=tmp_path / "prefix" / "etc" / "npmrc", **options)


def test_pip_indexes_from_files_and_environment(tmp_path: Path):
    write(tmp_path / "etc" / "pip.conf", """[global]
index-url = https://user:secret@mirror.example.test/simple
extra-index-url = file:///opt/local/simple
    http://extra.example.test:8080/simple
    /opt/wheels
trusted-host = extra.example.test:8080
    trusted.example.test
""")
    write(tmp_path / "etc" / "xdg" / "pip" / "pip.conf", "[install]\nextra_index_url = https://xdg.example.test/s\n")
    write(tmp_path / "home" / ".pip" / "pip.conf", "[global]\nindex-url = https://legacy.example.test/simple\n")
    write(tmp_path / "home" / ".config" / "pip" / "pip.conf", "not an ini file [[[\n")
    chosen = write(tmp_path / "chosen.conf", "[global]\nextra-index-url = https://chosen.example.test:443/\n")
    env = {"PIP_EXTRA_INDEX_URL": "https://env.example.test/simple file:///x", "PIP_CONFIG_FILE": str(chosen),
           "PIP_TRUSTED_HOST": "[fd00::7]:3141"}
    assert allowlist(tmp_path, env) == [
        "[fd00::7]:3141", "chosen.example.test", "env.example.test", "extra.example.test:8080",
        "legacy.example.test", "mirror.example.test", "trusted.example.test", "xdg.example.test"]


def test_pips_own_default_unless_a_network_index_replaces_it(tmp_path: Path):
    assert allowlist(tmp_path) == ["files.example.test", "index.example.test"]
    write(tmp_path / "etc" / "pip.conf", "[global]\nindex-url = file:///srv/simple\n")
    assert allowlist(tmp_path) == ["files.example.test", "index.example.test"]
    write(tmp_path / "etc" / "pip.conf", "[global]\nextra-index-url = https://extra.example.test/\n")
    assert allowlist(tmp_path) == ["extra.example.test", "files.example.test", "index.example.test"]
    assert allowlist(tmp_path, {"PIP_INDEX_URL": "http://mirror.example.test:3141/"}) == [
        "extra.example.test", "mirror.example.test:3141"]
    assert allowlist(tmp_path, {"PIP_NO_INDEX": "true"}) == ["extra.example.test"]
    assert allowlist(tmp_path, {"PIP_CONFIG_FILE": os.devnull}) == ["files.example.test", "index.example.test"]


def test_pip_default_comes_from_the_installed_pip():
    urls = pip_default_index()
    assert urls and all(url.startswith("https://") for url in urls)


def test_npm_registries_from_environment_and_npmrc_files(tmp_path: Path):
    write(tmp_path / "home" / ".npmrc", """registry = "https://npm.example.test/"
@corp:registry=https://corp.example.test:8443/npm/
; registry=https://commented.example.test/
//npm.example.test/:_authToken=${NPM_TOKEN}
registry=${NPM_REGISTRY}
""")
    write(tmp_path / "etc" / "npmrc", "registry=http://system.example.test/\n")
    write(tmp_path / "prefix" / "etc" / "npmrc", "registry=https://global.example.test/\n")
    env = {"npm_config_registry": "https://env.example.test/"}
    assert allowlist(tmp_path, env, pip_default_urls=[]) == [
        "corp.example.test:8443", "env.example.test", "global.example.test", "npm.example.test",
        "system.example.test"]


def test_npm_is_asked_without_the_bots_secrets(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    npm = write(bin_dir / "npm", '#!/bin/sh\necho "[$SLACK_BOT_TOKEN] $*" > "$HOME/seen"\n'
                                 'echo https://cli.example.test:4873/\n')
    npm.chmod(0o755)
    (tmp_path / "home").mkdir()
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path / "home"), "SLACK_BOT_TOKEN": "xoxb-secret"}
    assert allowlist(tmp_path, env, npm="npm", pip_default_urls=[]) == ["cli.example.test:4873"]
    assert (tmp_path / "home" / "seen").read_text() == "[] config get registry\n"
    assert allowlist(tmp_path, {"PATH": str(bin_dir)}, npm="not-installed", pip_default_urls=[]) == []


def test_a_hanging_npm_is_given_up_on(tmp_path: Path):
    npm = write(tmp_path / "bin" / "npm", "#!/bin/sh\nsleep 30\necho https://late.example.test/\n")
    npm.chmod(0o755)
    started = time.monotonic()
    path = f"{tmp_path / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    assert npm_registries({"PATH": path}, [], "npm", timeout=0.5) == []
    assert time.monotonic() - started < 5


def test_apt_sources_in_both_formats(tmp_path: Path):
    apt = tmp_path / "etc" / "apt"
    write(apt / "sources.list", """deb http://deb.example.test/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://secure.example.test/repo stable main
deb [ arch=amd64 ] http://spaced.example.test:8080/ x y
deb-src mirror+http://mirrors.example.test/list.txt bookworm main
  # deb http://commented.example.test/ bookworm main
deb cdrom:[Debian GNU/Linux 12]/ bookworm main
deb file:/srv/repo ./
deb copy:/srv/repo ./
deb mirror+file:/etc/apt/mirrors.txt bookworm main
deb http://[fd00::5]:3142/debian bookworm main
""")
    write(apt / "sources.list.d" / "extra.list", "deb http://DEB.example.test/debian bookworm-updates main\n")
    write(apt / "sources.list.d" / "off.list.disabled", "deb http://disabled.example.test/ x main\n")
    write(apt / "sources.list.d" / "system.sources", """Types: deb deb-src
# http://comment.example.test/
URIs: http://deb822.example.test/debian
 https://continued.example.test/debian
Suites: bookworm
Components: main

Types: deb
URIs: file:/srv/local-repo
Suites: ./

Types: deb
Enabled: no
URIs: http://switched-off.example.test/debian
Suites: bookworm
""")
    assert allowlist(tmp_path, pip_default_urls=[]) == [
        "[fd00::5]:3142", "continued.example.test", "deb.example.test", "deb822.example.test",
        "mirrors.example.test", "secure.example.test", "spaced.example.test:8080"]


def test_entries_are_deduplicated_sorted_and_accepted_by_the_proxy(tmp_path: Path):
    write(tmp_path / "etc" / "pip.conf", "[global]\nindex-url = http://shared.example.test/simple\n")
    write(tmp_path / "home" / ".npmrc", "registry=https://Shared.Example.Test./npm/\n")
    write(tmp_path / "etc" / "apt" / "sources.list", "deb https://shared.example.test:443/debian x main\n"
                                                     "deb http://bad_host!.example.test/ x main\n")
    entries = allowlist(tmp_path)
    assert entries == ["shared.example.test"]
    assert parse_allowlist(",".join(entries))[1] == []


def test_nothing_configured_gives_nothing(tmp_path: Path):
    assert allowlist(tmp_path, pip_default_urls=[]) == []
