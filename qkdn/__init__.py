"""qkdn: shared pieces of the QKD network control plane (CLI, errors, YANG names, topology, bring-up).

The planes live in their own top-level packages: ``qkd_agent`` (NETCONF server per node),
``kms`` (key managers), ``sdn_controller`` (control plane), ``orchestrator`` (north-bound API
and dashboard) and ``qkd_twin`` (emulated physical plane).
"""

__version__ = "0.1.0"
