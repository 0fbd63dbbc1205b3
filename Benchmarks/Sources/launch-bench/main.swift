// Placeholder: the benchmark driver is being written (see Benchmarks/README.md).
print("launch-bench: not written yet")
