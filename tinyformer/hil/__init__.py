"""Hardware-in-the-loop harness: serial protocol, client, targets, measurements, accuracy."""
