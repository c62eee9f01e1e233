"""Operator scripts behind the Makefile targets."""
