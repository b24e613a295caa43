"""veil's HTTP layer: the middleware, its own endpoints, and reading requests safely.

Kept light on purpose: `veil.http.routes` (the paths) is imported by the notice, and
`veil.http.body` by the batch wire format, without loading the middleware or the runtime.
`from veil import VeilMiddleware` is the public import.
"""
