"""runlog's user-facing layer: the embedded library, the CLI and (later) the server."""

__all__: list[str] = []
