"""Benchmarks of azml-client against raw aiohttp/httpx and other SDKs; see README.md."""
