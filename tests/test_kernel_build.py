"""Building the kernel library: the cache, concurrent builds, a missing compiler."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from nas.runtime import build

FAKE_COMPILER = """#!/bin/sh
# Answers --version and writes a recognisable file wherever -o points (no real compiling).
if [ "$1" = "--version" ]; then echo "fake-c++ 1.0"; exit 0; fi
while [ $# -gt 0 ]; do
  if [ "$1" = "-o" ]; then sleep 0.2; printf 'whole library' > "$2"; fi
  shift
done
"""


@pytest.fixture
def fake_compiler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    compiler = tmp_path / "fake-c++"
    compiler.write_text(FAKE_COMPILER)
    compiler.chmod(compiler.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setenv(build.ENV_CACHE, str(tmp_path / "cache"))
    return compiler


def test_two_builds_at_once_leave_one_whole_library_and_no_debris(fake_compiler: Path, tmp_path: Path) -> None:
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda: paths.append(build.build(force=True))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(paths) == 2 and paths[0] == paths[1]
    assert paths[0].read_text() == "whole library"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [paths[0].name]  # temp folders removed
    assert build.build() == paths[0]  # cached: found, not rebuilt


def test_the_cache_key_follows_the_compiler(fake_compiler: Path, tmp_path: Path, monkeypatch) -> None:
    first = build.build()
    fake_compiler.write_text(FAKE_COMPILER.replace("fake-c++ 1.0", "fake-c++ 2.0"))
    assert build.build() != first


def test_without_a_compiler_the_build_command_says_so_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "missing-c++"))
    monkeypatch.setenv(build.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr("sys.argv", ["build"])
    assert build.main() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no C++ compiler" in err and "missing-c++" in err
    library, reason = build.load()
    assert library is None and "missing-c++" in reason
