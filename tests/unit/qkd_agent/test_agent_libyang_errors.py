"""YANG constraints the ETSI model does not use (must, leafref, unique, min/max-elements,
choice, anydata, nested modules): their libyang errors mapped to RFC 6241/7950 error-tags,
on a small module written for this test."""

from __future__ import annotations

from pathlib import Path

import libyang
import pytest
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.libyang_errors import LibyangIssue, node_name_of, rpc_error_from_issue
from qkd_agent.rpc_error import ErrorTag, RpcError
from qkd_agent.yang_context import load_context
from qkdn.errors import ConfigError
from qkdn.namespaces import NETCONF_BASE_NS

NS = "urn:qkdn:test:bench"
AUG_NS = "urn:qkdn:test:bench-extra"

BENCH_YANG = """
module test-bench {
  yang-version 1.1;
  namespace "urn:qkdn:test:bench";
  prefix tb;

  container bench {
    leaf name { type string; mandatory true; }
    leaf limit { type uint16; default 100; }
    list slot {
      key id;
      unique "label";
      max-elements 3;
      leaf id { type uint8 { range "1..9"; } }
      leaf label { type string { length "1..8"; } }
      leaf peer { type leafref { path "../../slot/id"; } }
      leaf size {
        type uint16;
        must ". <= ../../limit" { error-message "size above limit"; }
      }
    }
    choice speed {
      leaf fast { type empty; }
      case slow-case {
        leaf slow { type uint8; }
        leaf slower { type uint8; }
      }
    }
    anydata blob;
    leaf-list tag { type string; min-elements 1; }
  }
}
"""

EXTRA_YANG = """
module test-bench-extra {
  yang-version 1.1;
  namespace "urn:qkdn:test:bench-extra";
  prefix tx;
  import test-bench { prefix tb; }
  augment "/tb:bench" {
    leaf colour { type string; }
  }
}
"""


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> libyang.Context:
    folder: Path = tmp_path_factory.mktemp("yang")
    (folder / "test-bench.yang").write_text(BENCH_YANG)
    (folder / "test-bench-extra.yang").write_text(EXTRA_YANG)
    return load_context(folder)


BASE = {"test-bench:bench": {"name": "b1", "tag": ["t"], "slot": [{"id": 1, "label": "a"}]}}


@pytest.fixture
def store(ctx: libyang.Context) -> Datastore:
    return Datastore(ctx, BASE)


def config(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<bench xmlns="{NS}">{body}</bench></config>'
    )


def rejected(store: Datastore, body: str) -> RpcError:
    before = store.running_json()
    with pytest.raises(RpcError) as exc:
        store.edit_config(config(body))
    assert store.running_json() == before
    return exc.value


def test_leafref_to_missing_instance_is_data_missing(store: Datastore) -> None:
    err = rejected(store, "<slot><id>2</id><peer>7</peer></slot>")
    assert err.tag is ErrorTag.DATA_MISSING
    assert err.app_tag == "instance-required"
    assert err.info["bad-element"] == "peer"
    store.edit_config(config("<slot><id>2</id><peer>1</peer></slot>"))


def test_must_violation_is_operation_failed(store: Datastore) -> None:
    err = rejected(store, "<slot><id>1</id><size>500</size></slot>")
    assert err.tag is ErrorTag.OPERATION_FAILED
    assert err.app_tag == "must-violation"
    assert "size above limit" in err.message
    store.edit_config(config("<limit>1000</limit><slot><id>1</id><size>500</size></slot>"))


def test_unique_violation_is_data_not_unique(store: Datastore) -> None:
    err = rejected(store, "<slot><id>2</id><label>a</label></slot>")
    assert err.tag is ErrorTag.OPERATION_FAILED
    assert err.app_tag == "data-not-unique"


def test_max_elements_is_too_many_elements(store: Datastore) -> None:
    err = rejected(store, "<slot><id>2</id></slot><slot><id>3</id></slot><slot><id>4</id></slot>")
    assert err.tag is ErrorTag.OPERATION_FAILED
    assert err.app_tag == "too-many-elements"


def test_min_elements_is_too_few_elements(store: Datastore) -> None:
    err = rejected(store, '<tag nc:operation="delete">t</tag>')
    assert err.tag is ErrorTag.OPERATION_FAILED
    assert err.app_tag == "too-few-elements"


def test_mandatory_leaf_missing(store: Datastore) -> None:
    err = rejected(store, '<name nc:operation="delete"/>')
    assert err.tag is ErrorTag.MISSING_ELEMENT
    assert err.info["bad-element"] == "name"


def test_range_and_length(store: Datastore) -> None:
    assert rejected(store, "<slot><id>10</id></slot>").tag is ErrorTag.INVALID_VALUE
    err = rejected(store, "<slot><id>1</id><label>much-too-long</label></slot>")
    assert err.tag is ErrorTag.INVALID_VALUE
    assert err.info["bad-element"] == "label"


def test_choice_creating_one_case_removes_the_other(store: Datastore) -> None:
    store.edit_config(config("<fast/>"))
    assert store.running_json()["test-bench:bench"]["fast"] == [None]
    store.edit_config(config("<slow>1</slow><slower>2</slower>"))
    bench = store.running_json()["test-bench:bench"]
    assert "fast" not in bench
    assert (bench["slow"], bench["slower"]) == (1, 2)
    store.edit_config(config("<fast/>"))
    bench = store.running_json()["test-bench:bench"]
    assert "slow" not in bench and "slower" not in bench


def test_empty_leaf_with_value_is_invalid(store: Datastore) -> None:
    assert rejected(store, "<fast>yes</fast>").tag is ErrorTag.INVALID_VALUE


def test_anydata_edit_is_operation_not_supported(store: Datastore) -> None:
    err = rejected(store, "<blob><anything/></blob>")
    assert err.tag is ErrorTag.OPERATION_NOT_SUPPORTED


def test_augmented_leaf_in_its_own_namespace(store: Datastore) -> None:
    store.edit_config(config(f'<colour xmlns="{AUG_NS}">red</colour>'))
    assert store.running_json()["test-bench:bench"]["test-bench-extra:colour"] == "red"
    data = store.get_config()
    assert data.find(f"{{{NS}}}bench/{{{AUG_NS}}}colour").text == "red"
    # the augmented leaf's name in the base module namespace is unknown
    assert rejected(store, "<colour>red</colour>").tag is ErrorTag.UNKNOWN_ELEMENT


def test_defaults_are_not_stored(store: Datastore) -> None:
    assert "limit" not in store.running_json()["test-bench:bench"]


def test_load_context_without_modules_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_context(tmp_path)


def test_load_context_with_broken_module_is_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.yang").write_text("module broken { namespace x; prefix")
    with pytest.raises(ConfigError, match="broken.yang"):
        load_context(tmp_path)


@pytest.mark.parametrize(
    ("message", "tag", "app_tag"),
    [
        ('Mandatory choice "x" data do not exist.', ErrorTag.DATA_MISSING, "missing-choice"),
        ('Duplicate instance of "v".', ErrorTag.DATA_EXISTS, None),
        ('Unexpected data state node "s" found.', ErrorTag.BAD_ELEMENT, None),
        ('Node "n" not found as a child of "p" node.', ErrorTag.UNKNOWN_ELEMENT, None),
        ("Something libyang says about a value.", ErrorTag.INVALID_VALUE, None),
    ],
)
def test_message_mapping(message: str, tag: ErrorTag, app_tag: str | None) -> None:
    err = rpc_error_from_issue(LibyangIssue(message, "/m:a/b[k='1']/c", None))
    assert (err.tag, err.app_tag) == (tag, app_tag)
    assert err.info == {"bad-element": "c"}


def test_node_name_of() -> None:
    assert node_name_of("/m:a/b[k='x/y']/m2:c[.='1']") == "c"
    assert node_name_of(None) is None


@pytest.mark.parametrize(
    ("app_tag", "tag"),
    [
        ("instance-required", ErrorTag.DATA_MISSING),
        ("must-violation", ErrorTag.OPERATION_FAILED),
        ("my-own-must-tag", ErrorTag.OPERATION_FAILED),  # a must with its error-app-tag
    ],
)
def test_app_tag_decides_over_message(app_tag: str, tag: ErrorTag) -> None:
    err = rpc_error_from_issue(LibyangIssue("custom error-message", "/m:a", app_tag))
    assert (err.tag, err.app_tag) == (tag, app_tag)
