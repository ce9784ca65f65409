"""Local stand-ins for the outside world (router, providers, hotspot page); never active in production."""
