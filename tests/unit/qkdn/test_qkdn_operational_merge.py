from qkdn.operational_merge import merge_operational

NODE = "etsi-qkd-sdn-node:qkd_node"


def test_links_from_module_and_km_become_one_entry():
    module = {NODE: {"qkdn_status": "x:OPERATING", "qkd_links": {"qkd_link": [
        {"qkdl_id": "L1", "qkdl_status": "x:ACTIVE"}, {"qkdl_id": "L2", "qkdl_status": "x:OFF"}]}}}
    km = {NODE: {"qkd_links": {"qkd_link": [
        {"qkdl_id": "L2", "qkdn-key-manager:key_store": {"capacity_bits": 8}},
        {"qkdl_id": "L3", "qkdn-key-manager:key_store": {"capacity_bits": 9}}]},
        "qkdn-key-manager:key_pool": {"ready_keys": 1}}}
    merged = merge_operational(module, km)[NODE]
    links = {link["qkdl_id"]: link for link in merged["qkd_links"]["qkd_link"]}
    assert set(links) == {"L1", "L2", "L3"}
    assert links["L2"] == {"qkdl_id": "L2", "qkdl_status": "x:OFF",
                           "qkdn-key-manager:key_store": {"capacity_bits": 8}}
    assert merged["qkdn_status"] == "x:OPERATING"
    assert merged["qkdn-key-manager:key_pool"] == {"ready_keys": 1}


def test_inputs_are_not_modified():
    a = {NODE: {"qkd_links": {"qkd_link": [{"qkdl_id": "L1"}]}}}
    b = {NODE: {"qkd_links": {"qkd_link": [{"qkdl_id": "L1", "qkdl_status": "s"}]}}}
    merge_operational(a, b)
    assert a == {NODE: {"qkd_links": {"qkd_link": [{"qkdl_id": "L1"}]}}}
