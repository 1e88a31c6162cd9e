"""SDN controller: NETCONF southbound to the agents, access control, admission control,
routing element, monitoring element, user/SLA and topology databases (``docs/controller.md``).

Public API, by module:

- ``routing``: ``build_graph``, ``compute_path``, ``compute_widest_path``,
  ``compute_multipath``, ``route_session``, ``max_rate``, ``key_aware_weight``,
  ``make_key_aware_weight``, ``hop_weight``, ``GraphRouter``, ``Path``, ``Route``, ``RouteLeg``.
- ``access_control``: ``check_access``, ``Decision``, ``AccessReason``, ``etsi004_status``,
  ``http_status``.
- ``admission_control``: ``AdmissionControl``, ``AdmissionPolicy``, ``ConfigRequest``,
  ``check_qos``, ``SessionState``, ``AdmissionReason``, ``ETSI004_STATUS``, outcomes
  ``Waiting``/``Refused``/``Configured``/``Terminated``/``Rerouted``, ``SessionView``.
- ``session_config``: ``QoS``, ``KmConfig``, ``KmRole``, ``TokenBucket``, ``VirtualHop``,
  ``AppBinding``, ``build_km_configs``.
- ``config_payloads``: ``session_config_payload``, ``session_delete_payload``,
  ``session_restore_payload``, ``orphan_delete_payload``.
- ``push``: ``NodeConfigurator`` (protocol), ``push_all``, ``remove_all``,
  ``plan_session_push``, ``plan_reroute_push``.
- ``monitoring``: ``assess``, ``MonitoringThresholds``, ``AlarmEvent``, ``AlarmKind``.
- ``user_db``: ``UserDb``, ``SlaProfile``, ``User``, ``Application``, ``FallbackPolicy``.
- ``topology_db``: ``TopologyDb``, ``LinkUpdate``; ``link_metrics``: ``LinkMetrics``,
  ``LinkStatus``.
- ``controller``: ``Controller``, ``KmSignals`` (protocol), ``SessionRefusal``,
  ``ControllerEvent``.
- ``southbound``: ``Southbound``, ``AgentSession``, ``AgentEndpoint``, ``check_capabilities``.
- ``daemon``: ``ControllerProcess``, ``resolve_settings``, ``controller_child_spec``.
"""
