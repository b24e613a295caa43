"""Data-subject rights: who may ask (identity.py), the life of a request (requests.py), and
the rights themselves (export, correction, erasure, restriction: their own modules)."""
