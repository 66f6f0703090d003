"""Set-up a new user expects (issue #13, "Set-up"): ``make test`` never stops at a sudo prompt,
says in one line what to install by hand, and the browser test is skipped (not failed) without a
browser; the editable install imports from the source tree.

scripts/ensure-chromium runs with a PATH of stand-in commands (``apt-get``, ``sudo``, ``id``)
that record whether they were called, so no package is installed and no privilege is needed.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.test_appeal import find_browser
from tests.cli.test_cli import REPO

SCRIPT = REPO / "scripts" / "ensure-chromium"
BASH = "/bin/bash"


def stand_in(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{BASH}\n{body}\n")
    path.chmod(0o755)


def ensure(bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([BASH, str(SCRIPT)], capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                          env={"PATH": str(bin_dir), "HOME": str(bin_dir), **env})


def test_without_apt_get_it_says_what_to_install_by_hand_in_one_line(tmp_path: Path) -> None:
    result = ensure(tmp_path)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr.decode()
    assert "no apt-get" in lines[0] and "by hand" in lines[0] and "skipped" in lines[0]


def test_not_root_and_no_passwordless_sudo_never_prompts(tmp_path: Path) -> None:
    """Before: ``sudo apt-get update`` asked for a password in the middle of ``make test``."""
    calls = tmp_path / "calls"
    stand_in(tmp_path, "id", 'echo 1000')
    stand_in(tmp_path, "sudo", f'echo "sudo $*" >> {calls}; [ "$1" = -n ] || read -r answer; exit 1')
    stand_in(tmp_path, "apt-get", f'echo "apt-get $*" >> {calls}')
    result = ensure(tmp_path)
    lines = result.stderr.decode().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr.decode()
    assert "root or passwordless sudo" in lines[0] and "by hand" in lines[0]
    assert calls.read_text().splitlines() == ["sudo -n true"]  # asked sudo without a prompt; apt-get never ran


def test_root_installs_with_apt_get(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    stand_in(tmp_path, "id", 'echo 0')
    stand_in(tmp_path, "apt-get", f'echo "apt-get $*" >> {calls}; [ "$1" = install ] && '
                                  f'printf "#!{BASH}\\n" > {tmp_path}/chromium && chmod 755 {tmp_path}/chromium; exit 0')
    result = ensure(tmp_path)
    assert result.returncode == 0, result.stderr.decode()
    assert [c.split()[0:2] for c in calls.read_text().splitlines()] == [["apt-get", "update"], ["apt-get", "install"]]


def test_a_browser_on_path_is_enough(tmp_path: Path) -> None:
    stand_in(tmp_path, "google-chrome", "exit 0")
    stand_in(tmp_path, "apt-get", "exit 99")
    assert ensure(tmp_path).returncode == 0


def test_the_browser_test_is_skipped_with_a_reason_without_a_browser(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CHATSLA_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        find_browser()
    monkeypatch.setenv("CHATSLA_BROWSER", "nope")
    with pytest.raises(pytest.skip.Exception, match="CHATSLA_BROWSER=nope"):
        find_browser()


def test_the_browser_can_be_named(tmp_path: Path, monkeypatch) -> None:
    stand_in(tmp_path, "my-chrome", "exit 0")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CHATSLA_BROWSER", "my-chrome")
    assert find_browser() == str(tmp_path / "my-chrome")
    monkeypatch.delenv("CHATSLA_BROWSER")
    stand_in(tmp_path, "chromium-browser", "exit 0")
    assert find_browser() == str(tmp_path / "chromium-browser")


def test_a_skipped_test_shows_its_reason_in_the_summary(tmp_path: Path) -> None:
    """Issue #13: "skip ... saying so in the pytest summary" (pyproject's -ra)."""
    test = tmp_path / "test_x.py"
    test.write_text("from tests.test_appeal import find_browser\n\ndef test_shot():\n    find_browser()\n")
    env = {**os.environ, "PATH": str(tmp_path), "PYTHONPATH": str(REPO)}
    env.pop("CHATSLA_BROWSER", None)
    import sys

    result = subprocess.run([sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir",
                             str(REPO), "-p", "no:cacheprovider", str(test)], capture_output=True, timeout=120,
                            env=env, cwd=tmp_path)
    out = result.stdout.decode()
    assert result.returncode == 0, out
    assert "SKIPPED" in out and "no Chromium found" in out, out


def test_the_editable_install_imports_from_the_source_tree() -> None:
    """The quiet editable install (Makefile) still imports the working tree, not a copy, under the
    chatsla namespace only (the folders install as chatsla.streams, ...: nothing generic)."""
    code = ("import chatsla, chatsla.streams, chatsla.schemas, chatsla.projections, importlib.util; "
            "assert all(importlib.util.find_spec(n) is None for n in ('streams', 'schemas', 'projections')); "
            "print(chatsla.__file__, chatsla.streams.__file__, chatsla.schemas.__file__)")
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd="/")
    paths = result.stdout.decode().split()
    assert result.returncode == 0 and paths, result.stderr.decode()
    assert all(Path(p).resolve().is_relative_to(REPO) and "build" not in Path(p).relative_to(REPO).parts
               for p in paths), paths
