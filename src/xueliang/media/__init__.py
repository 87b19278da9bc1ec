"""The media plane: ingest, the per-channel stream hub, recording, and (later) live and playback.

The hot path moves compressed access units (PyAV packets) and never decodes.
"""
