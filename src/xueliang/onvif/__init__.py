"""ONVIF: find devices on a segment (WS-Discovery), read what they offer, register them."""
