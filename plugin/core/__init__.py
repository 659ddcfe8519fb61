"""The host-free plugin core (standard library + websockets; no Qt, no painting-app API).

buffers (raw pixels cut by the protocol's Rect; geometry is ``latentbrush.protocol.geometry``) ->
planning (RegionPlan) -> requests (JobRequest) ->
client (protocol over websockets, events.py) -> controller (drives a Job against a host.Host),
with history (JobRecord) and token (where the local server's token lives).
"""
