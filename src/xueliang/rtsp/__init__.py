"""RTSP client protocol (RFC 2326), sans-I/O: messages, session description, RTP depacketizers.

Pure parsers, serialisers and state machines fed with bytes; ``xueliang.media.sources.rtsp_native``
does the socket I/O. Owning the reads is the point: FFmpeg's RTSP reader makes six system calls
per RTP packet (a poll and a recv for the '$', the header and the payload), which on a recording
server costs more than everything else a channel does; reading a frame's worth at a time costs a
fraction of that (docs/BENCHMARKS.md).
"""
