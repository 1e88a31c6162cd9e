"""running.json + running.journal: each commit appends only its changes, a restart (even after
kill -9 at any point) finds the last committed configuration, the journal stays bounded."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import libyang
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.namespaces import ETSI_NODE_NS, ETSI_TYPES_NS, NETCONF_BASE_NS
from qkdn.running_config_file import (
    RunningConfigFile,
    apply_changes,
    config_changes,
    list_keys,
    load_running,
    read_journal,
)

NODE = "etsi-qkd-sdn-node:qkd_node"
NODE_ID = "11111111-1111-4111-8111-111111111111"
PEER_ID = "22222222-2222-4222-8222-222222222222"
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def ctx() -> libyang.Context:
    return load_context()


def base_config() -> dict[str, Any]:
    return {NODE: {"qkdn_id": NODE_ID, "qkdn_location_id": "lab-A",
                   "qkdn_capabilities": {"link_stats_support": True}}}


def app_id(i: int) -> str:
    return f"55555555-5555-4555-8555-{i:012d}"


def edit(body: str) -> etree._Element:
    return etree.fromstring(
        f'<config xmlns="{NETCONF_BASE_NS}" xmlns:nc="{NETCONF_BASE_NS}">'
        f'<qkd_node xmlns="{ETSI_NODE_NS}" xmlns:t="{ETSI_TYPES_NS}">{body}</qkd_node></config>')


def add_app(i: int, priority: int = 1) -> etree._Element:
    return edit(f"<qkd_applications><qkd_app><app_id>{app_id(i)}</app_id>"
                f"<app_type>t:CLIENT</app_type><server_app_id>sae-{i}</server_app_id>"
                f"<client_app_id>sae-{i + 1}</client_app_id><app_priority>{priority}</app_priority>"
                f"<remote_qkdn_id>{PEER_ID}</remote_qkdn_id></qkd_app></qkd_applications>")


def delete_app(i: int) -> etree._Element:
    return edit(f'<qkd_applications><qkd_app nc:operation="delete"><app_id>{app_id(i)}'
                f"</app_id></qkd_app></qkd_applications>")


def restarted(ctx: libyang.Context, state: Path) -> dict[str, Any]:
    """What a restarted node's datastore holds (canonical JSON)."""
    loaded = load_running(state / "running.json", state / "running.journal")
    return Datastore(ctx, loaded).running_json()


def journaled_store(ctx: libyang.Context, state: Path) -> tuple[Datastore, RunningConfigFile]:
    """A datastore whose commits go to running.json + running.journal in ``state``."""
    store = Datastore(ctx, base_config())
    file = RunningConfigFile(state / "running.json", state / "running.journal",
                             list_keys(store.schema.root))
    file.write_whole(store.running_snapshot())
    store.add_listener(file.commit)
    return store, file


def test_the_lists_of_the_node_model_have_their_yang_keys(ctx):
    keys = list_keys(Datastore(ctx, base_config()).schema.root)
    assert keys[(NODE, "qkd_applications", "qkd_app")] == ("app_id",)
    assert keys[(NODE, "qkd_links", "qkd_link")] == ("qkdl_id",)
    assert keys[(NODE, "qkd_interfaces", "qkd_interface")] == ("qkdi_id",)


def test_every_commit_survives_a_restart_and_appends_only_its_change(ctx, tmp_path):
    store, file = journaled_store(ctx, tmp_path)
    rng = random.Random(7)
    live: set[int] = set()
    sizes = []
    for step in range(60):
        before = (tmp_path / "running.journal").stat().st_size
        if live and rng.random() < 0.3:
            victim = rng.choice(sorted(live))
            store.edit_config(delete_app(victim))
            live.discard(victim)
        elif live and rng.random() < 0.2:
            store.edit_config(add_app(rng.choice(sorted(live)), priority=rng.randint(2, 9)))
        else:
            store.edit_config(add_app(step))
            live.add(step)
        sizes.append((tmp_path / "running.journal").stat().st_size - before)
        # no close(): what a node killed now would restart with
        assert restarted(ctx, tmp_path) == store.running_json(), step
    assert file.whole_writes == 1 and file.appends == 60
    # one application's change is a few hundred bytes, whatever the node holds
    assert max(sizes) < 1000
    assert len(store.running_json()[NODE]["qkd_applications"]["qkd_app"]) == len(live)


def test_the_journal_is_folded_in_once_it_outgrows_the_file(ctx, tmp_path, monkeypatch):
    import qkdn.running_config_file as module
    monkeypatch.setattr(module, "MIN_COMPACT_BYTES", 2000)
    store, file = journaled_store(ctx, tmp_path)
    for i in range(40):
        store.edit_config(add_app(i))
        journal = (tmp_path / "running.journal").stat().st_size
        whole = (tmp_path / "running.json").stat().st_size
        assert journal <= max(2000, whole) + 1000     # bounded by the file's own size
    assert 2 <= file.whole_writes < 10                # amortised: not once per commit
    assert restarted(ctx, tmp_path) == store.running_json()
    file.close(store.running_snapshot())
    assert (tmp_path / "running.journal").stat().st_size == 0
    assert restarted(ctx, tmp_path) == store.running_json()


def test_replaying_changes_the_file_already_holds_changes_nothing(ctx, tmp_path):
    """A crash between rewriting running.json and emptying the journal."""
    store, file = journaled_store(ctx, tmp_path)
    for i in range(5):
        store.edit_config(add_app(i))
    store.edit_config(delete_app(2))
    store.edit_config(add_app(3, priority=7))
    journal = (tmp_path / "running.journal").read_bytes()
    file.write_whole(store.running_snapshot())
    (tmp_path / "running.journal").write_bytes(journal)    # as if not emptied
    assert restarted(ctx, tmp_path) == store.running_json()


def test_a_torn_last_record_is_ignored(tmp_path):
    journal = tmp_path / "running.journal"
    journal.write_bytes(b'{"c":[{"p":["n","a"],"v":1}]}\n{"c":[{"p":["n","b"],"v"')
    assert read_journal(journal) == [{"p": ["n", "a"], "v": 1}]
    assert load_running(tmp_path / "running.json", journal) == {"n": {"a": 1}}
    assert load_running(tmp_path / "none.json", tmp_path / "none.journal") is None


KEYS = {("n", "app"): ("id",), ("n", "app", "sub"): ("k",)}
entry = st.fixed_dictionaries({"id": st.integers(0, 6), "x": st.integers(0, 3),
                               "sub": st.lists(st.fixed_dictionaries(
                                   {"k": st.integers(0, 3), "y": st.integers(0, 2)}),
                                   max_size=3, unique_by=lambda e: e["k"])})
config = st.fixed_dictionaries({"n": st.fixed_dictionaries(
    {"app": st.lists(entry, max_size=6, unique_by=lambda e: e["id"])},
    optional={"loc": st.sampled_from(["a", "b"]), "list": st.lists(st.integers(), max_size=3)})})


def by_key(c: dict[str, Any]) -> Any:
    app = sorted(c["n"]["app"], key=lambda e: e["id"])
    return {**c["n"], "app": [{**e, "sub": sorted(e["sub"], key=lambda s: s["k"])} for e in app]}


@settings(max_examples=200, deadline=None)
@given(config, config, st.data())
def test_changes_turn_old_into_new_even_replayed(old, new, data):
    # entries kept unchanged share the very object, as the datastore's snapshots do
    olds = {e["id"]: e for e in old["n"]["app"]}
    new["n"]["app"] = [olds[e["id"]] if e["id"] in olds and data.draw(st.booleans()) else e
                       for e in new["n"]["app"]]
    changes = config_changes(old, new, KEYS)
    import copy
    assert by_key(apply_changes(copy.deepcopy(old), changes)) == by_key(new)
    assert by_key(apply_changes(copy.deepcopy(new), changes)) == by_key(new)   # idempotent


CHILD = """
import sys
from pathlib import Path
from qkd_agent.datastore import Datastore
from qkd_agent.yang_context import load_context
from qkdn.running_config_file import RunningConfigFile, list_keys
sys.path.insert(0, sys.argv[2])
from test_qkdn_running_config_file import add_app, base_config
state = Path(sys.argv[1])
store = Datastore(load_context(), base_config())
file = RunningConfigFile(state / "running.json", state / "running.journal",
                         list_keys(store.schema.root))
file.write_whole(store.running_snapshot())
store.add_listener(file.commit)
for i in range(int(sys.argv[3])):
    store.edit_config(add_app(i))
print("committed", flush=True)
sys.stdin.read()
"""


def test_kill_9_after_the_commits_keeps_them(ctx, tmp_path):
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), str(Path(__file__).parent), "12"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout.readline().strip() == "committed"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    apps = restarted(ctx, tmp_path)[NODE]["qkd_applications"]["qkd_app"]
    assert sorted(a["app_id"] for a in apps) == [app_id(i) for i in range(12)]
