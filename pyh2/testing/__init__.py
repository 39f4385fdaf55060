"""Control plane for pyh2: helpers shared by the tests, the CLI `demo` and the benchmarks.

Nothing here touches the HAMMER2 format itself; it locates the reference images made by the
real HAMMER2 tools, parses what those tools printed, and compares pyh2's view against it.
"""
