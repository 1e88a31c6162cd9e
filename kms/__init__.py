"""Key manager (KM) of one node: per-link key stores, ETSI GS QKD 014 and 004 application
interfaces, per-session token buckets and priority queue, and trusted-node key relay."""
