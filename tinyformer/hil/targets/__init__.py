"""Where firmware runs: QEMU, Renode, a board."""
