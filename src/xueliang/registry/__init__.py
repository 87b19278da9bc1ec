"""The camera register (建档): organisations, devices, channels, and sheet import/export."""
