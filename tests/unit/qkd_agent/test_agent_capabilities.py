"""Hello capabilities and get-schema lookup, from the project's YANG modules."""

from __future__ import annotations

import pytest

from qkd_agent.capabilities import (
    Capability,
    SchemaModule,
    collect_schema_modules,
    find_schema,
    server_capabilities,
)
from qkd_agent.yang_context import load_context
from qkdn.namespaces import (
    ETSI_NODE_MODULE,
    ETSI_NODE_NS,
    ETSI_NODE_REVISION,
    ETSI_TYPES_MODULE,
    YANG_DIR,
)


@pytest.fixture(scope="module")
def modules():
    return collect_schema_modules(load_context())


def test_every_project_module_and_its_imports_are_served(modules):
    names = {m.name for m in modules}
    project = {p.stem for p in YANG_DIR.glob("*.yang")}
    assert project <= names
    assert {"ietf-yang-types", "ietf-inet-types"} <= names
    assert not names & {"yang", "ietf-yang-library", "ietf-datastores"}


def test_module_texts_are_the_files(modules):
    for module in modules:
        path = YANG_DIR / f"{module.name}.yang"
        if path.exists():
            assert module.text == path.read_text()
        else:
            assert module.text.startswith(f"module {module.name}")


def test_capability_uris(modules):
    caps = server_capabilities(modules)
    assert caps[0] == Capability.BASE_1_0 and Capability.BASE_1_1 in caps
    assert f"{ETSI_NODE_NS}?module={ETSI_NODE_MODULE}&revision={ETSI_NODE_REVISION}" in caps
    assert len(caps) == len(set(caps))


def test_features_in_capability():
    module = SchemaModule("m", "2024-01-01", "urn:m", "", features=("a", "b"))
    assert module.capability == "urn:m?module=m&revision=2024-01-01&features=a,b"
    assert SchemaModule("m", None, "urn:m", "").capability == "urn:m?module=m"


def test_find_schema(modules):
    assert [m.name for m in find_schema(modules, ETSI_TYPES_MODULE, None)] == [ETSI_TYPES_MODULE]
    assert find_schema(modules, ETSI_TYPES_MODULE, "1999-01-01") == []
    assert find_schema(modules, "nope", None) == []
