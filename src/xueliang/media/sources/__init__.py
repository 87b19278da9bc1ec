"""Where packets come from: RTSP cameras (PyAV/FFmpeg), later GB/T 28181 and the simulator."""
