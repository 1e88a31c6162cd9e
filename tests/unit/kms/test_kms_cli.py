"""qkdn km store-levels reads a node's key stores."""

from kms.cli import main
from kms.key_store import LinkKeyStore


def test_store_levels(tmp_path, capsys):
    store = LinkKeyStore(tmp_path / "km" / "links" / "L1.sqlite", "L1", "a", "b")
    store.deliver(0, bytes(64))
    store.take_outgoing(8)
    store.close()
    assert main(["km", "store-levels", "--state-dir", str(tmp_path)]) == 0
    line = capsys.readouterr().out.splitlines()[1].split()
    assert line == ["L1", "24", "32", "8", "1"]


def test_store_levels_without_stores(tmp_path, capsys):
    assert main(["km", "store-levels", "--state-dir", str(tmp_path)]) == 1
