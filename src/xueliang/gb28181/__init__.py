"""GB/T 28181 (2016 and 2022): the protocol cores (sans-I/O) and, on top of them, the SIP
server that lets cameras, NVRs and lower platforms join the network."""
