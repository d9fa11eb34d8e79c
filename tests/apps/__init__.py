"""Apps that tests run under `runtime serve` in subprocesses."""
