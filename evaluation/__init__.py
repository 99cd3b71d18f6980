"""Golden datasets, metrics and the synthetic demo catalogue used to measure the resolver."""
