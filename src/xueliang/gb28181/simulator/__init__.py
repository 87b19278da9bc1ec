"""The GB/T 28181 device simulator: sans-I/O devices (``device``), what they describe
(``catalog``), pre-encoded media replayed per stream (``media``) and the asyncio runner."""
