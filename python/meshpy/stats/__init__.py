"""Traffic statistics: histograms, the per-edge reports sidecars send, and their time series."""
