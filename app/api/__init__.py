"""HTTP APIs: thin routes that validate input, call one service and serialise."""
