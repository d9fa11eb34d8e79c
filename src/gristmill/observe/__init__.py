"""What an operator sees: one snapshot of streams, groups, lanes and leases (status, metrics)."""
