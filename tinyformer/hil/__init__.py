"""Hardware-in-the-loop harness: firmware builds, targets, serial protocol, measurements."""
