"""Where firmware runs: QEMU (default), Renode, a board; ``registry.make_target`` picks one."""
