"""The package says what it is: its licence ships in the sdist and the wheel and matches the metadata."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# setuptools' default ``license-files`` patterns: a matching file goes into the sdist and the
# wheel's .dist-info/licenses/ without any configuration (checked with build_meta.build_sdist/wheel)
DEFAULT_LICENSE_FILES = ("LICEN[CS]E*", "COPYING*", "NOTICE*", "AUTHORS*")


def pyproject() -> dict[str, Any]:
    import tomllib  # Python >= 3.11, as tests/test_docs_api.py

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_license_file_is_the_mit_licence_the_metadata_names() -> None:
    project = pyproject()["project"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert project["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the torchscope maintainers" in text
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text


def test_license_file_is_packaged() -> None:
    config = pyproject()
    setuptools_config = config.get("tool", {}).get("setuptools", {})
    patterns = config["project"].get("license-files") or setuptools_config.get("license-files") or DEFAULT_LICENSE_FILES
    assert any(fnmatch.fnmatch("LICENSE", pattern) for pattern in patterns), patterns
