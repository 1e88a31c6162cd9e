"""SDN controller: NETCONF southbound to the agents, access control, admission control,
routing element, monitoring element, user/SLA and topology databases."""
