"""The execution layer: Ray, on this machine alone (the default) or on a cluster (``--ray``).

``runtime`` connects (one local node started on demand, or an existing cluster); ``tasks``
spreads CPU/GPU work; ``pool`` keeps the targets (an emulator worker per ``qemu`` resource, a
board actor per attached board) and runs measurements on free ones, again elsewhere when a
node dies; ``evaluate`` shards a test set over them; ``worker`` adds a host to a cluster.
"""
