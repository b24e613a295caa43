"""veil_collector: the standalone collector service, analyst tools and the `veil` CLI.

It uses the `veil` package; `veil` never imports from here.
"""
