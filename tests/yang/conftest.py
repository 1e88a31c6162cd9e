"""Fixtures shared by the YANG module tests: where the modules, pyang and the references are."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from qkdn.namespaces import YANG_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]


def find_shared_dir() -> Path:
    """The project's shared folder: ``$QKDN_SHARED_DIR`` or ``<repo root>/../shared``."""
    configured = os.environ.get("QKDN_SHARED_DIR")
    return Path(configured) if configured else REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def yang_dir() -> Path:
    return YANG_DIR


@pytest.fixture(scope="session")
def etsi_reference_dir() -> Path:
    """The corrected ("validation") copy of the official ETSI GS QKD 015 V2.1.1 modules."""
    path = find_shared_dir() / "reference" / "etsi-yang" / "validation"
    if not (path / "etsi-qkd-sdn-node.yang").is_file():
        pytest.skip(f"ETSI 015 reference modules not found in {path} (set QKDN_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def etsi_official_dir() -> Path:
    """The unmodified official ETSI GS QKD 015 V2.1.1 modules (with the `when` defect)."""
    path = find_shared_dir() / "reference" / "etsi-yang" / "gs015-v2.1.1"
    if not (path / "etsi-qkd-sdn-node.yang").is_file():
        pytest.skip(f"official ETSI 015 modules not found in {path} (set QKDN_SHARED_DIR)")
    return path


@pytest.fixture(scope="session")
def ietf_modules_dir() -> Path:
    """pyang's copy of the IETF modules (ietf-yang-types, ietf-inet-types)."""
    pytest.importorskip("pyang")
    path = Path(sys.prefix) / "share" / "yang" / "modules" / "ietf"
    if not (path / "ietf-yang-types.yang").is_file():
        pytest.skip(f"pyang's IETF modules not found in {path}")
    return path


@pytest.fixture(scope="session")
def run_pyang(ietf_modules_dir: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run pyang with the IETF modules and the given search folders on its path."""

    def run(*args: str, path: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
        search = [f"-p{ietf_modules_dir}"] + [f"-p{folder}" for folder in path]
        return subprocess.run(
            [sys.executable, "-m", "pyang", *search, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    return run
