import json
import shutil
from pathlib import Path

from qkdn.cli import main

REPO = Path(__file__).resolve().parents[3]


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_users_db_created_from_topology_then_managed(tmp_path, capsys):
    shutil.copy(REPO / "topologies" / "paper.yaml", tmp_path / "topology.yaml")
    d = str(tmp_path)
    code, out, _ = run(capsys, "users", "--state-dir", d, "list")
    assert code == 0 and "user-2" in out and "sae-2@2" in out
    assert (tmp_path / "controller" / "users.sqlite").exists()
    code, out, _ = run(capsys, "users", "--state-dir", d, "sla-add", "bronze", "--max-bps",
                       "2000", "--no-lower-rate", "--fallback", "hybrid")
    assert code == 0
    code, out, _ = run(capsys, "users", "--state-dir", d, "--json", "sla-list")
    bronze = next(s for s in json.loads(out) if s["name"] == "bronze")
    assert bronze["allow_lower_rate"] is False and bronze["fallback"] == "hybrid"
    code, out, _ = run(capsys, "users", "--state-dir", d, "add", "dave", "--sla", "bronze",
                       "--peer", "user-1", "--app", "sae-d@4")
    assert code == 0
    code, out, _ = run(capsys, "users", "--state-dir", d, "revoke", "dave", "--reason", "test")
    assert code == 0
    code, out, _ = run(capsys, "users", "--state-dir", d, "--json", "list")
    dave = next(u for u in json.loads(out) if u["name"] == "dave")
    assert dave["revoked"] and dave["allowed_peers"] == ["user-1"]
    assert dave["applications"][0]["sae_id"] == "sae-d"


def test_users_errors_exit_nonzero(tmp_path, capsys):
    d = str(tmp_path)
    code, _, err = run(capsys, "users", "--state-dir", d, "add", "x", "--sla", "nope")
    assert code == 1 and "unknown SLA profile 'nope'" in err
    code, _, err = run(capsys, "users", "--state-dir", d, "revoke", "ghost")
    assert code == 1 and "unknown user" in err
    code, _, err = run(capsys, "users", "--state-dir", d, "sla-add", "z", "--max-bps", "0")
    assert code == 1 and "max_bps" in err
