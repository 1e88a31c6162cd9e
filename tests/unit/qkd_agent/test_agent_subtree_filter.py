"""RFC 6241 §6 subtree filtering, on plain XML (the §6.4 cases) and on the ETSI model."""

from __future__ import annotations

import pytest
from lxml import etree

from qkd_agent.subtree_filter import filter_subtree

NS = "urn:example:staff"
BASE = "urn:ietf:params:xml:ns:netconf:base:1.0"

DATA = f"""
<data xmlns="{BASE}">
  <team xmlns="{NS}">
    <member><login>ada</login><role>admin</role><full-name>Ada L</full-name>
      <company><dept>7</dept><badge>1</badge></company></member>
    <member><login>bob</login><role>user</role><full-name>Bob K</full-name>
      <company><dept>7</dept><badge>2</badge></company></member>
    <member><login>cy</login><role>user</role><full-name>Cy M</full-name>
      <company><dept>9</dept><badge>3</badge></company></member>
    <tag>red</tag><tag>blue</tag>
  </team>
  <other xmlns="urn:example:other"><x>1</x></other>
</data>
"""


def _keys(element: etree._Element) -> tuple[str, ...]:
    return ("login",) if etree.QName(element).localname == "member" else ()


def run(filter_body: str) -> list[etree._Element]:
    data = etree.fromstring(DATA, etree.XMLParser(remove_blank_text=True))
    flt = etree.fromstring(f'<filter xmlns="{BASE}">{filter_body}</filter>')
    return filter_subtree(data, flt, _keys)


def logins(team: etree._Element) -> list[str]:
    return [m.findtext(f"{{{NS}}}login") for m in team.findall(f"{{{NS}}}member")]


def child_names(element: etree._Element) -> list[str]:
    return [etree.QName(c).localname for c in element]


def test_empty_filter_selects_nothing() -> None:  # §6.4.2
    assert run("") == []


def test_selection_node_returns_whole_subtree() -> None:  # §6.4.3
    (team,) = run(f'<team xmlns="{NS}"/>')
    assert logins(team) == ["ada", "bob", "cy"]
    assert [t.text for t in team.findall(f"{{{NS}}}tag")] == ["red", "blue"]
    assert team.find(f".//{{{NS}}}badge") is not None


def test_containment_and_selection_pick_one_leaf_of_every_entry() -> None:  # §6.4.4
    (team,) = run(f'<team xmlns="{NS}"><member><full-name/></member></team>')
    members = team.findall(f"{{{NS}}}member")
    assert len(members) == 3
    # the key is always returned with the selected leaf
    assert all(child_names(m) == ["login", "full-name"] for m in members)
    assert team.find(f"{{{NS}}}tag") is None


def test_content_match_alone_returns_the_whole_entry() -> None:  # §6.4.5
    (team,) = run(f'<team xmlns="{NS}"><member><login>bob</login></member></team>')
    assert logins(team) == ["bob"]
    (bob,) = team
    assert child_names(bob) == ["login", "role", "full-name", "company"]


def test_content_match_with_selection_returns_chosen_leaves() -> None:  # §6.4.6
    (team,) = run(
        f'<team xmlns="{NS}"><member><login>ada</login><role/><company><dept/></company>'
        "</member></team>"
    )
    (ada,) = team
    assert child_names(ada) == ["login", "role", "company"]
    assert child_names(ada[2]) == ["dept"]


def test_several_filter_entries_are_a_union() -> None:  # §6.4.7
    (team,) = run(
        f'<team xmlns="{NS}"><member><login>ada</login><role/></member>'
        "<member><login>cy</login><full-name/></member></team>"
    )
    ada, cy = team
    assert child_names(ada) == ["login", "role"]
    assert child_names(cy) == ["login", "full-name"]


def test_content_match_on_non_key_leaf_selects_matching_entries() -> None:
    (team,) = run(f'<team xmlns="{NS}"><member><role>user</role><login/></member></team>')
    assert logins(team) == ["bob", "cy"]
    assert all(child_names(m) == ["login", "role"] for m in team)


def test_failed_content_match_excludes_parent() -> None:
    assert run(f'<team xmlns="{NS}"><member><login>zed</login></member></team>') == []


def test_deep_content_match() -> None:
    (team,) = run(
        f'<team xmlns="{NS}"><member><company><dept>7</dept><badge/></company></member></team>'
    )
    assert logins(team) == ["ada", "bob"]
    assert [b.text for b in team.iter(f"{{{NS}}}badge")] == ["1", "2"]


def test_leaf_list_content_match_returns_matching_value_only() -> None:
    (team,) = run(f'<team xmlns="{NS}"><tag>blue</tag><member><login/></member></team>')
    assert [t.text for t in team.findall(f"{{{NS}}}tag")] == ["blue"]


def test_namespace_must_match() -> None:
    assert run('<team xmlns="urn:example:wrong"/>') == []


def test_filter_without_namespace_matches_any_namespace() -> None:
    (other,) = run('<other xmlns=""><x/></other>')
    assert etree.QName(other).namespace == "urn:example:other"


def test_top_level_selection_picks_only_that_tree() -> None:
    (other,) = run('<other xmlns="urn:example:other"/>')
    assert etree.QName(other).localname == "other"


def test_result_is_a_copy() -> None:
    data = etree.fromstring(DATA, etree.XMLParser(remove_blank_text=True))
    flt = etree.fromstring(f'<filter xmlns="{BASE}"><team xmlns="{NS}"/></filter>')
    (team,) = filter_subtree(data, flt, _keys)
    team.clear()
    assert len(data[0]) == 5


@pytest.mark.parametrize(
    ("filter_value", "matches"),
    [
        ('<kind xmlns:a="urn:example:ids">a:PHYS</kind>', True),
        ('<kind xmlns:z="urn:example:ids">z:PHYS</kind>', True),  # prefix differs, URI same
        ('<kind xmlns:a="urn:example:nope">a:PHYS</kind>', False),
        ("<kind>PHYS</kind>", False),
    ],
)
def test_qualified_name_values_compare_by_namespace(filter_value: str, matches: bool) -> None:
    data = etree.fromstring(
        f'<data xmlns="{BASE}"><link xmlns="{NS}"><id>1</id>'
        f'<kind xmlns:t="urn:example:ids">t:PHYS</kind></link></data>'
    )
    # <kind> inherits the default namespace NS from <link>
    flt = etree.fromstring(f'<filter xmlns="{BASE}"><link xmlns="{NS}">{filter_value}</link></filter>')
    assert bool(filter_subtree(data, flt)) is matches


def pruned(filter_body: str) -> etree._Element:
    from qkd_agent.subtree_filter import prune_to_filter

    data = etree.fromstring(DATA, etree.XMLParser(remove_blank_text=True))
    prune_to_filter(data, etree.fromstring(f'<filter xmlns="{BASE}">{filter_body}</filter>'),
                    _keys)
    return data


def test_prune_keeps_named_nodes_and_keys() -> None:
    data = pruned(f'<team xmlns="{NS}"><member><company><badge/></company></member></team>')
    (team,) = data  # <other> is gone
    assert child_names(team) == ["member", "member", "member"]  # <tag>s are gone
    assert all(child_names(m) == ["login", "company"] for m in team)
    assert all(child_names(m[1]) == ["badge"] for m in team)


def test_prune_keeps_everything_under_content_match_only_levels() -> None:
    data = pruned(f'<team xmlns="{NS}"><member><login>bob</login></member></team>')
    assert all(child_names(m) == ["login", "role", "full-name", "company"] for m in data[0])


def test_prune_keeps_whole_entries_named_by_two_filter_nodes() -> None:
    data = pruned(f'<team xmlns="{NS}"><member><login>ada</login><role/></member>'
                  "<member><company/></member></team>")
    assert all(len(m) == 4 for m in data[0])
