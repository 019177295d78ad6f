"""Command-line interface: parses options and delegates; no maths here."""
