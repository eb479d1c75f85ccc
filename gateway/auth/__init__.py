"""Credentials: API keys, JWT verification, the gateway's own tokens."""
