"""QKD agent: the NETCONF server (RFC 6241 over SSH, RFC 6242) of one QKD node, exposing the
ETSI GS QKD 015 model and qkdn's extension modules, with a libyang-validated datastore and
RFC 5277 notifications."""
