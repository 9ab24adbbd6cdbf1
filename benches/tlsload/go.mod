module meshpy.local/benches/tlsload

go 1.25
