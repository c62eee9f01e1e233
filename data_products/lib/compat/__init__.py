"""Workarounds on library internals, one module per library, each with why, the version it was
written against and a test that fails when the pinned behaviour changes."""
