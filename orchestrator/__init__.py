"""Orchestrator: north-bound REST API (ETSI GS QKD 018 shapes) and the operator dashboard."""
