"""Talking to MikroTik routers: the RouterOS API client, Mikhmon rules, MikroTik units."""
