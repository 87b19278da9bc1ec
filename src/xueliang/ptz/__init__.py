"""Pan, tilt, zoom and presets: protocol-agnostic commands, checked and audited by the service,
carried out by one driver per device protocol (ONVIF now, GB/T 28181 later)."""
