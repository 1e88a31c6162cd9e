"""Metric helpers: per-process registries, rendering and parsing, operation labels."""

from __future__ import annotations

from prometheus_client import Counter

from qkdn.metrics import (
    RPC_LATENCY_BUCKETS,
    netconf_rpc_histogram,
    new_registry,
    operation_label,
    parse_samples,
    render,
    sample_value,
)


def test_registries_are_independent():
    first, second = new_registry(), new_registry()
    a = Counter("qkdn_test_things", "things", registry=first)
    Counter("qkdn_test_things", "things", registry=second)   # same name: no clash
    a.inc(3)
    assert sample_value(render(first), "qkdn_test_things_total") == 3
    assert sample_value(render(second), "qkdn_test_things_total") == 0


def test_rpc_histogram_buckets_and_labels():
    registry = new_registry()
    hist = netconf_rpc_histogram(registry, "qkdn_test_rpc_seconds", ("operation",))
    hist.labels("edit-config").observe(0.003)
    hist.labels("edit-config").observe(0.2)
    hist.labels("get").observe(7.0)
    text = render(registry)
    assert sample_value(text, "qkdn_test_rpc_seconds_count", operation="edit-config") == 2
    assert sample_value(text, "qkdn_test_rpc_seconds_bucket", operation="edit-config",
                        le="0.005") == 1
    assert sample_value(text, "qkdn_test_rpc_seconds_bucket", operation="get", le="5.0") == 0
    assert sample_value(text, "qkdn_test_rpc_seconds_count") == 3   # summed over labels
    assert list(RPC_LATENCY_BUCKETS) == sorted(RPC_LATENCY_BUCKETS)


def test_sample_value_absent_and_parse_samples():
    registry = new_registry()
    Counter("qkdn_test_c", "c", ["api"], registry=registry).labels("014").inc()
    text = render(registry)
    assert sample_value(text, "qkdn_test_c_total", api="004") is None
    assert ("qkdn_test_c_total", {"api": "014"}, 1.0) in parse_samples(text)


def test_operation_label_bounds_the_label_set():
    assert operation_label("get-config") == "get-config"
    assert operation_label("create-subscription") == "create-subscription"
    assert operation_label("my-own-rpc") == "other"
    assert operation_label("unknown") == "other"
