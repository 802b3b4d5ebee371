"""The oversight workspace: audit bundles imported from terminals, their continuity, the Board's figures.

``Oversight`` (``engine.oversight.service``) is a workspace of its own (its own keys, its own
signed audit log, its own auditors); ``engine.oversight.imports`` decides what becomes of each
bundle; ``engine.oversight.report`` sums the accepted figures for the FR Technology Board's
quarter and the annual public report, as CSV and as an HTML document with charts.
"""
