"""The providers: one module per inference service, each registering its one service with
:func:`sidecar.protocol.registry.register`, which finds them all by listing this package."""
