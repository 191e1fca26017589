"""One module per CLI command: orchestration and rendering; the work is in the library."""
