"""Performance models and benches: latency model, its held-out check, kernel and link benches."""
