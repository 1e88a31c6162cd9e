"""File signatures: the KM directory is rebuilt only when a file it comes from changed."""

import os

from kms.directory import FileSignature


def test_signature_changes_when_a_file_is_replaced_or_appears(tmp_path):
    ports, config = tmp_path / "ports.json", tmp_path / "node.json"
    config.write_text("{}")
    missing = FileSignature.of([ports, config])
    assert missing.stamps[0] is None and missing == FileSignature.of([ports, config])
    ports.write_text('{"km": 1}')
    first = FileSignature.of([ports, config])
    assert first != missing
    assert first == FileSignature.of([ports, config])          # nothing rewritten
    tmp = tmp_path / "ports.tmp"
    tmp.write_text('{"km": 2}')                                 # same size, new file
    os.replace(tmp, ports)
    assert FileSignature.of([ports, config]) != first
