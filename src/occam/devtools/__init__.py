"""Developer tools that ship with the package (nothing here is imported by the library)."""
